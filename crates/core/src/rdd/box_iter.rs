//! [`BoxIter`]: a partition's values as they are computed, behind one type however the
//! partition was made.
//!
//! A plain `Box<dyn Iterator>` forwards only `next`: every layer of a pipeline (`flat_map`, then
//! `map`, then the consumer) paid a virtual `next` per element, and each `flat_map` layer its
//! state machine on top. `BoxIter` also carries two *drive* entry points, in which the consumer
//! hands the whole iterator a callback and the iterator runs its own loop:
//!
//! - `drive` calls the callback per element, in the loop `for_each` compiles for the concrete
//!   iterator inside (any iterator made with [`BoxIter::new`]);
//! - `drive_chunks` calls it per *chunk* of up to [`CHUNK`] elements. The layers the engine's
//!   element-wise operations make ([`BoxIter::map_each`], [`BoxIter::flat_map_each`],
//!   [`BoxIter::filter_each`]) hand their results on in chunks: each runs its function in a loop
//!   compiled for that function, and the layer or consumer above is called once per chunk
//!   instead of once per element (a word count's words crossed two such calls each).
//!
//! Consumers that fold (`for_each`, `fold`, `count`, `sum`) get whichever loop the iterator
//! offers. Over chunks, a consumer's per-element loop is separate from the producers': a word
//! count's table lookups no longer run interleaved with the splitting of lines (likely why it
//! gained more than the calls cost: a mispredicted branch of the splitting, which depends on
//! word lengths, also discarded the lookups in flight). One thread, 400k lines: 217 ms with a
//! call per word per layer, 176 ms over chunks; in the full benchmark at 2.5M lines/s, 0.56–0.62
//! µs of CPU per line instead of 0.90–1.02.

/// How many elements a chunk holds at most: large enough that a call per chunk costs nothing per
/// element, small enough that a chunk of pairs stays in the first-level cache.
const CHUNK: usize = 128;

/// A partition's values as they are computed: a lazy iterator, made with [`BoxIter::new`].
pub struct BoxIter<T> {
    inner: Box<dyn Drive<T>>,
}

/// What `BoxIter` needs of the iterator inside it (implemented for every [`Source`]).
trait Drive<T> {
    fn next_item(&mut self) -> Option<T>;
    fn hint(&self) -> (usize, Option<usize>);
    /// Calls `f` on every remaining element, in the iterator's own loop.
    fn drive(self: Box<Self>, f: &mut dyn FnMut(T));
    /// Calls `f` on every remaining element, a non-empty chunk at a time: `f` takes the elements
    /// it wants out of the vector, and what it leaves is dropped.
    fn drive_chunks(self: Box<Self>, f: &mut dyn FnMut(&mut Vec<T>));
    /// Whether `drive_chunks` is the cheaper of the two (see [`Source::CHUNKED`]).
    fn chunked(&self) -> bool;
}

/// What is inside a `BoxIter`: any iterator ([`Plain`]) or one of the engine's layers. Each
/// writes its loop once, in [`run`](Source::run); [`Drive`] compiles it twice, once calling the
/// consumer per element and once filling chunks.
trait Source<T> {
    /// Whether the elements are better taken in chunks: true for the layers, whose consumer's
    /// loop then runs apart from theirs; false for a plain iterator (gathering its elements into
    /// chunks would only copy them).
    const CHUNKED: bool;
    fn next_item(&mut self) -> Option<T>;
    fn hint(&self) -> (usize, Option<usize>);
    /// Calls `emit` on every remaining element.
    fn run(self, emit: impl FnMut(T));
    /// Calls `emit` on every remaining element, a non-empty chunk of at most [`CHUNK`] at a
    /// time: by default `run`'s elements gathered into chunks.
    fn run_chunks(self, emit: &mut dyn FnMut(&mut Vec<T>))
    where
        Self: Sized,
    {
        let mut out = Chunks::new(emit);
        self.run(|x| out.push(x));
        out.finish();
    }
}

impl<T, S: Source<T>> Drive<T> for S {
    #[inline]
    fn next_item(&mut self) -> Option<T> {
        Source::next_item(self)
    }
    fn hint(&self) -> (usize, Option<usize>) {
        Source::hint(self)
    }
    fn drive(self: Box<Self>, f: &mut dyn FnMut(T)) {
        (*self).run(f)
    }
    fn drive_chunks(self: Box<Self>, f: &mut dyn FnMut(&mut Vec<T>)) {
        (*self).run_chunks(f)
    }
    fn chunked(&self) -> bool {
        S::CHUNKED
    }
}

/// Any iterator, driven by its own `for_each`.
struct Plain<I>(I);

impl<I: Iterator> Source<I::Item> for Plain<I> {
    const CHUNKED: bool = false;
    #[inline]
    fn next_item(&mut self) -> Option<I::Item> {
        self.0.next()
    }
    fn hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
    fn run(self, emit: impl FnMut(I::Item)) {
        self.0.for_each(emit)
    }
}

/// A chunk being filled for the callback `f`, which gets it whenever it is full.
struct Chunks<'a, T> {
    buf: Vec<T>,
    f: &'a mut dyn FnMut(&mut Vec<T>),
}

impl<'a, T> Chunks<'a, T> {
    fn new(f: &'a mut dyn FnMut(&mut Vec<T>)) -> Self {
        Chunks {
            buf: Vec::with_capacity(CHUNK),
            f,
        }
    }

    #[inline(always)]
    fn push(&mut self, x: T) {
        self.buf.push(x);
        if self.buf.len() == CHUNK {
            self.flush();
        }
    }

    #[inline]
    fn flush(&mut self) {
        (self.f)(&mut self.buf);
        self.buf.clear();
    }

    /// Hands over what is left.
    fn finish(mut self) {
        if !self.buf.is_empty() {
            self.flush();
        }
    }
}

/// `map_each`'s layer. It maps its parent's chunks a chunk at a time: one `extend` writes the
/// mapped chunk, with no check per element.
struct MapEach<T, F> {
    parent: BoxIter<T>,
    f: F,
}

impl<T, U, F: FnMut(T) -> U> Source<U> for MapEach<T, F> {
    const CHUNKED: bool = true;
    #[inline]
    fn next_item(&mut self) -> Option<U> {
        self.parent.next().map(&mut self.f)
    }
    fn hint(&self) -> (usize, Option<usize>) {
        self.parent.size_hint()
    }
    fn run(self, mut emit: impl FnMut(U)) {
        let MapEach { parent, mut f } = self;
        parent.for_each(|x| emit(f(x)));
    }
    fn run_chunks(self, emit: &mut dyn FnMut(&mut Vec<U>)) {
        let MapEach { parent, mut f } = self;
        let mut mapped = Vec::with_capacity(CHUNK);
        parent.inner.drive_chunks(&mut |xs| {
            mapped.extend(xs.drain(..).map(&mut f));
            emit(&mut mapped);
            mapped.clear();
        });
    }
}

/// `flat_map_each`'s layer: `front` holds what is left of the element being stepped through.
struct FlatMapEach<T, F, J> {
    parent: BoxIter<T>,
    f: F,
    front: Option<J>,
}

impl<T, U, F, I> Source<U> for FlatMapEach<T, F, I::IntoIter>
where
    F: FnMut(T) -> I,
    I: IntoIterator<Item = U>,
{
    const CHUNKED: bool = true;
    fn next_item(&mut self) -> Option<U> {
        loop {
            if let Some(front) = &mut self.front {
                match front.next() {
                    Some(y) => return Some(y),
                    None => self.front = None,
                }
            }
            let x = self.parent.next()?;
            self.front = Some((self.f)(x).into_iter());
        }
    }
    fn hint(&self) -> (usize, Option<usize>) {
        let front = self.front.as_ref().map_or((0, Some(0)), |f| f.size_hint());
        match self.parent.size_hint() {
            (_, Some(0)) => front,
            _ => (front.0, None),
        }
    }
    fn run(self, mut emit: impl FnMut(U)) {
        let FlatMapEach {
            parent,
            mut f,
            front,
        } = self;
        if let Some(front) = front {
            front.for_each(&mut emit);
        }
        parent.for_each(|x| f(x).into_iter().for_each(&mut emit));
    }
}

/// `filter_each`'s layer.
struct FilterEach<T, F> {
    parent: BoxIter<T>,
    f: F,
}

impl<T, F: FnMut(&T) -> bool> Source<T> for FilterEach<T, F> {
    const CHUNKED: bool = true;
    fn next_item(&mut self) -> Option<T> {
        let f = &mut self.f;
        self.parent.find(|x| f(x))
    }
    fn hint(&self) -> (usize, Option<usize>) {
        (0, self.parent.size_hint().1)
    }
    fn run(self, mut emit: impl FnMut(T)) {
        let FilterEach { parent, mut f } = self;
        parent.for_each(|x| {
            if f(&x) {
                emit(x)
            }
        });
    }
    fn run_chunks(self, emit: &mut dyn FnMut(&mut Vec<T>)) {
        let FilterEach { parent, mut f } = self;
        let mut kept = Vec::with_capacity(CHUNK);
        parent.inner.drive_chunks(&mut |xs| {
            kept.extend(xs.drain(..).filter(|x| f(x)));
            if !kept.is_empty() {
                emit(&mut kept);
                kept.clear();
            }
        });
    }
}

impl<T> BoxIter<T> {
    /// Boxes an iterator (or anything iterable) as a partition's values.
    pub fn new<I>(values: I) -> BoxIter<T>
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: 'static,
    {
        BoxIter {
            inner: Box::new(Plain(values.into_iter())),
        }
    }

    /// All remaining values in a vector, gathered by the inner iterator's own loop (`collect`
    /// steps through `next`).
    pub fn into_vec(self) -> Vec<T> {
        let mut v = Vec::with_capacity(self.size_hint().0);
        self.for_each(|x| v.push(x));
        v
    }
}

impl<T: 'static> BoxIter<T> {
    /// `f` of every value, as a layer that passes chunks on (see the module's documentation).
    pub(crate) fn map_each<U>(self, f: impl FnMut(T) -> U + 'static) -> BoxIter<U> {
        BoxIter {
            inner: Box::new(MapEach { parent: self, f }),
        }
    }

    /// The values of `f` of every value, as a layer that passes chunks on.
    pub(crate) fn flat_map_each<I>(self, f: impl FnMut(T) -> I + 'static) -> BoxIter<I::Item>
    where
        I: IntoIterator + 'static,
        I::IntoIter: 'static,
    {
        BoxIter {
            inner: Box::new(FlatMapEach::<T, _, I::IntoIter> {
                parent: self,
                f,
                front: None,
            }),
        }
    }

    /// The values for which `f` is true, as a layer that passes chunks on.
    pub(crate) fn filter_each(self, f: impl FnMut(&T) -> bool + 'static) -> BoxIter<T> {
        BoxIter {
            inner: Box::new(FilterEach { parent: self, f }),
        }
    }
}

impl<T> Iterator for BoxIter<T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        self.inner.next_item()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.hint()
    }

    fn fold<B, F: FnMut(B, T) -> B>(self, init: B, mut f: F) -> B {
        let mut acc = Some(init);
        if self.inner.chunked() {
            self.inner.drive_chunks(&mut |xs| {
                if let Some(mut a) = acc.take() {
                    for x in xs.drain(..) {
                        a = f(a, x);
                    }
                    acc = Some(a);
                }
            });
        } else {
            self.inner.drive(&mut |x| {
                if let Some(a) = acc.take() {
                    acc = Some(f(a, x));
                }
            });
        }
        // `acc` is only empty while `f` runs: if `f` panicked, the panic did not come back here.
        acc.expect("fold's accumulator is back after every call")
    }
}

#[cfg(test)]
mod tests {
    use super::{BoxIter, CHUNK};
    use proptest::prelude::*;

    /// A layer of a test pipeline, applied both as an engine layer and as a standard adapter.
    #[derive(Clone, Copy, Debug)]
    enum Layer {
        /// `x * 3 + 1`.
        Map,
        /// `x` copies of `x` (none for 0).
        FlatMap,
        /// Keeps odd values.
        Filter,
        /// A plain iterator adapter (`map(x + 2)`) boxed with `BoxIter::new`.
        Plain,
    }

    fn engine(values: Vec<u32>, layers: &[Layer]) -> BoxIter<u32> {
        let mut it = BoxIter::new(values);
        for layer in layers {
            it = match layer {
                Layer::Map => it.map_each(|x| x * 3 + 1),
                Layer::FlatMap => it.flat_map_each(|x| vec![x; (x % 5) as usize]),
                Layer::Filter => it.filter_each(|x| x % 2 == 1),
                Layer::Plain => BoxIter::new(it.map(|x| x + 2)),
            };
        }
        it
    }

    fn oracle(values: &[u32], layers: &[Layer]) -> Vec<u32> {
        let mut v = values.to_vec();
        for layer in layers {
            v = match layer {
                Layer::Map => v.into_iter().map(|x| x * 3 + 1).collect(),
                Layer::FlatMap => v
                    .into_iter()
                    .flat_map(|x| vec![x; (x % 5) as usize])
                    .collect(),
                Layer::Filter => v.into_iter().filter(|x| x % 2 == 1).collect(),
                Layer::Plain => v.into_iter().map(|x| x + 2).collect(),
            };
        }
        v
    }

    fn layer() -> impl Strategy<Value = Layer> {
        prop::sample::select(vec![
            Layer::Map,
            Layer::FlatMap,
            Layer::Filter,
            Layer::Plain,
        ])
    }

    proptest! {
        /// Any stack of layers, stepped with `next` for a while and then consumed by each kind
        /// of consumer, gives what the same standard adapters give; chunks are never empty and
        /// never larger than `CHUNK`; size hints hold.
        #[test]
        fn layers_give_what_standard_adapters_give(
            values in prop::collection::vec(0u32..1000, 0..700),
            layers in prop::collection::vec(layer(), 0..5),
            steps in 0usize..300,
        ) {
            let want = oracle(&values, &layers);
            let stepped = steps.min(want.len());

            let mut it = engine(values.clone(), &layers);
            let mut got = Vec::new();
            for _ in 0..stepped {
                let (low, high) = it.size_hint();
                prop_assert!(low <= want.len() - got.len());
                prop_assert!(high.is_none_or(|h| h >= want.len() - got.len()));
                got.extend(it.next());
            }
            prop_assert_eq!(&got[..], &want[..stepped]);
            let rest = want.len() - stepped;
            prop_assert_eq!(engine(values.clone(), &layers).count(), want.len());

            let mut folded = got.clone();
            it.for_each(|x| folded.push(x));
            prop_assert_eq!(&folded, &want);

            let mut it = engine(values.clone(), &layers);
            let mut chunked: Vec<u32> = it.by_ref().take(stepped).collect();
            let mut sizes = Vec::new();
            it.inner.drive_chunks(&mut |xs| {
                sizes.push(xs.len());
                chunked.append(xs);
            });
            prop_assert_eq!(&chunked, &want);
            prop_assert!(sizes.iter().all(|&n| n > 0 && n <= CHUNK), "{:?}", sizes);
            prop_assert_eq!(sizes.iter().sum::<usize>(), rest);

            let mut it = engine(values.clone(), &layers);
            let head: Vec<u32> = it.by_ref().take(stepped).collect();
            prop_assert_eq!(head.len() + it.count(), want.len());

            let mut it = engine(values, &layers);
            let _ = it.by_ref().take(stepped).count();
            prop_assert_eq!(it.into_vec(), &want[stepped..]);
        }
    }

    #[test]
    fn folding_and_stepping_see_the_same_elements() {
        let make = || {
            let inner = BoxIter::new((0..10u32).flat_map(|i| 0..i));
            BoxIter::new(inner.map(|x| x * 3).filter(|x| x % 2 == 0))
        };
        // A `for` loop steps through `next`.
        let mut stepped = Vec::new();
        for x in make() {
            stepped.push(x);
        }
        let mut folded = Vec::new();
        make().for_each(|x| folded.push(x));
        let expected: Vec<u32> = (0..10u32)
            .flat_map(|i| 0..i)
            .map(|x| x * 3)
            .filter(|x| x % 2 == 0)
            .collect();
        assert_eq!(stepped, expected);
        assert_eq!(folded, expected);
        assert_eq!(make().count(), expected.len());
        assert_eq!(make().into_vec(), expected);
        assert_eq!(make().sum::<u32>(), expected.iter().sum::<u32>());
    }

    #[test]
    fn stepping_then_folding_continues_where_stepping_stopped() {
        let mut it = BoxIter::new(BoxIter::new(0..6u32).map(|x| x + 1));
        assert_eq!(it.next(), Some(1));
        assert_eq!(it.next(), Some(2));
        assert_eq!(it.fold(0, |a, x| a * 10 + x), 3456);
        // In the middle of a `flat_map_each` element: the rest of it comes first.
        let mut it = BoxIter::new(vec![3u32, 2]).flat_map_each(|x| (0..x).map(move |i| x * 10 + i));
        assert_eq!(it.next(), Some(30));
        assert_eq!(it.into_vec(), [31, 32, 20, 21]);
    }

    #[test]
    fn chunks_are_full_but_for_the_last() {
        let it = BoxIter::new(0..1000u32).map_each(|x| x);
        let mut sizes = Vec::new();
        it.inner.drive_chunks(&mut |xs| {
            sizes.push(xs.len());
            xs.clear();
        });
        let full = 1000 / CHUNK;
        assert_eq!(sizes.len(), full + 1);
        assert!(sizes[..full].iter().all(|&n| n == CHUNK));
        assert_eq!(sizes[full], 1000 % CHUNK);
    }
}
