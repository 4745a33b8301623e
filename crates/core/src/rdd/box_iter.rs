//! [`BoxIter`]: a partition's values as they are computed, behind one type however the
//! partition was made.
//!
//! A plain `Box<dyn Iterator>` forwards only `next`: every layer of a pipeline (`flat_map`, then
//! `map`, then the consumer) paid a virtual `next` per element, and each `flat_map` layer its
//! state machine on top. `BoxIter` also carries a *drive* entry point: the consumer hands the
//! whole iterator a callback, and the concrete iterator runs its own loop (`for_each`, compiled
//! for its type) calling it. Consumers that use `for_each`, `fold`, `count`, `sum` and the other
//! folding methods get that loop; `next` still works for the rest.

/// A partition's values as they are computed: a lazy iterator, made with [`BoxIter::new`].
pub struct BoxIter<T> {
    inner: Box<dyn Drive<T>>,
}

/// What `BoxIter` needs of the iterator inside it (implemented for every iterator).
trait Drive<T> {
    fn next_item(&mut self) -> Option<T>;
    fn hint(&self) -> (usize, Option<usize>);
    /// Calls `f` on every remaining element, in the iterator's own loop.
    fn drive(self: Box<Self>, f: &mut dyn FnMut(T));
}

impl<I: Iterator> Drive<I::Item> for I {
    #[inline]
    fn next_item(&mut self) -> Option<I::Item> {
        self.next()
    }
    fn hint(&self) -> (usize, Option<usize>) {
        self.size_hint()
    }
    fn drive(self: Box<Self>, f: &mut dyn FnMut(I::Item)) {
        (*self).for_each(f)
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
            inner: Box::new(values.into_iter()),
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
        self.inner.drive(&mut |x| {
            if let Some(a) = acc.take() {
                acc = Some(f(a, x));
            }
        });
        // `acc` is only empty while `f` runs: if `f` panicked, the panic did not come back here.
        acc.expect("fold's accumulator is back after every call")
    }
}

#[cfg(test)]
mod tests {
    use super::BoxIter;

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
    }
}
