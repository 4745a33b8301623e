//! The monitoring page: one self-contained HTML document (inline CSS and SVG, no script, no
//! external resource) that reloads itself every two seconds.

use super::{ClusterView, GraphView, InputView, Monitor};
use crate::BatchInfo;
use std::fmt::Write as _;

/// How many of the latest batches the charts show.
const CHART_BATCHES: usize = 120;

/// The colors of the series (the browser test looks for them).
pub(crate) const RECORDS_COLOR: &str = "#1f77b4";
pub(crate) const SCHEDULING_COLOR: &str = "#ff7f0e";
pub(crate) const PROCESSING_COLOR: &str = "#2ca02c";
pub(crate) const TOTAL_COLOR: &str = "#d62728";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart of `values` (one per batch, oldest first; `None` is a gap) with an optional
/// horizontal reference line (the batch interval).
fn chart(
    title: &str,
    unit: &str,
    values: &[Option<f64>],
    reference: Option<f64>,
    color: &str,
) -> String {
    let (w, h, left, right, top, bottom) = (560.0, 170.0, 56.0, 12.0, 24.0, 22.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let mut svg = format!(
        r#"<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><text x="{left}" y="15" class="title">{t}</text>"#,
        t = esc(title)
    );
    let known: Vec<f64> = values.iter().flatten().copied().collect();
    if known.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" class="empty">no batches yet</text></svg>"#,
            left + 10.0,
            top + plot_h / 2.0
        );
        return svg;
    }
    let max = known
        .iter()
        .copied()
        .chain(reference)
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.1;
    let x = |i: usize| left + plot_w * (i as f64 + 0.5) / values.len().max(1) as f64;
    let y = |v: f64| top + plot_h - plot_h * v / max;
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="#999"/><line x1="{left}" y1="{top}" x2="{left}" y2="{b}" stroke="#999"/><text x="{lx}" y="{ty}" class="axis">{max:.0}{unit}</text><text x="{lx}" y="{b}" class="axis">0</text>"##,
        b = top + plot_h,
        r = w - right,
        lx = left - 4.0,
        ty = top + 8.0,
        max = max,
    );
    if let Some(r) = reference {
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{yy}" x2="{xr}" y2="{yy}" stroke="#555" stroke-dasharray="5,4"/><text x="{tx}" y="{ty}" class="ref">batch interval</text>"##,
            yy = y(r),
            xr = w - right,
            tx = w - right - 90.0,
            ty = y(r) - 4.0,
        );
    }
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
        .collect();
    let _ = write!(
        svg,
        r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
        points.join(" ")
    );
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{v:.0}{unit}</title></circle>"#,
                x(i),
                y(*v)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn ms(d: Option<std::time::Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1000.0)
}

/// Renders the page.
pub(super) fn render(
    monitor: &Monitor,
    inputs: &[InputView],
    graph: &GraphView,
    cluster: &ClusterView,
    environment: &std::collections::BTreeMap<String, String>,
) -> String {
    let (recent, completed, failed): (Vec<BatchInfo>, u64, u64) = {
        let st = monitor.state.lock();
        let skip = st.batches.len().saturating_sub(CHART_BATCHES);
        (
            st.batches.iter().skip(skip).cloned().collect(),
            st.completed,
            st.failed,
        )
    };
    let receivers = monitor.receivers();
    let batch = monitor.batch_ms as f64;
    let title = graph.job.clone().unwrap_or_else(|| "streaming job".into());
    let mut html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2"><title>Spate: {t}</title><style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}}
h1{{font-size:22px;margin:0 0 6px}}h2{{font-size:17px;margin:22px 0 8px}}
.summary span{{margin-right:18px}}.charts{{display:flex;flex-wrap:wrap;gap:10px}}
.chart{{border:1px solid #ddd;background:#fcfcfc}}.chart .title{{font-size:13px;font-weight:600}}
.chart .axis{{font-size:10px;text-anchor:end;fill:#555}}.chart .ref,.chart .empty{{font-size:11px;fill:#555}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ddd;padding:3px 8px;text-align:left}}
.failed{{color:#b00}}</style></head><body><h1>Spate: {t}</h1>"#,
        t = esc(&title)
    );
    let last = recent.last();
    let _ = write!(
        html,
        r#"<p class="summary"><span>batch interval: {} ms</span><span>batches completed: {completed}</span><span class="{}">failed: {failed}</span><span>last batch: {}</span><span>last total delay: {}</span></p>"#,
        monitor.batch_ms,
        if failed > 0 { "failed" } else { "" },
        last.map_or("none".into(), |b| format!("{} ms", b.batch_time.ms())),
        last.and_then(BatchInfo::total_delay)
            .map_or("-".into(), |d| format!("{} ms", d.as_millis())),
    );
    let _ = write!(
        html,
        r#"<h2>Last {} batches</h2><div class="charts">"#,
        recent.len()
    );
    let series = |f: &dyn Fn(&BatchInfo) -> Option<f64>| -> Vec<Option<f64>> {
        recent.iter().map(f).collect()
    };
    html.push_str(&chart(
        "Input records per batch",
        "",
        &series(&|b| Some(b.records as f64)),
        None,
        RECORDS_COLOR,
    ));
    html.push_str(&chart(
        "Scheduling delay (ms)",
        " ms",
        &series(&|b| ms(b.scheduling_delay())),
        Some(batch),
        SCHEDULING_COLOR,
    ));
    html.push_str(&chart(
        "Processing delay (ms)",
        " ms",
        &series(&|b| ms(b.processing_delay())),
        Some(batch),
        PROCESSING_COLOR,
    ));
    html.push_str(&chart(
        "Total delay (ms)",
        " ms",
        &series(&|b| ms(b.total_delay())),
        Some(batch),
        TOTAL_COLOR,
    ));
    html.push_str("</div><h2>Receivers</h2>");
    if receivers.is_empty() {
        html.push_str("<p>none</p>");
    } else {
        html.push_str("<table><tr><th>stream</th><th>receiver</th><th>state</th><th>records</th><th>records/s (last 10 batches)</th><th>skipped</th><th>restarts</th><th>most queued</th><th>waits for memory</th><th>last error</th></tr>");
        for r in &receivers {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.stream,
                esc(&r.name),
                r.state,
                r.records,
                r.rate,
                r.skipped,
                r.restarts,
                r.max_queued,
                r.memory_waits,
                esc(r.last_error.as_deref().unwrap_or("")),
            );
        }
        html.push_str("</table>");
    }
    inputs_table(&mut html, inputs);
    if let Some(driver) = &cluster.driver {
        let _ = write!(
            html,
            "<h2>Executors</h2><p>joining at {}: {} alive, {} lost; {} tasks computed on executors ({} sent to the holder of their input block)</p>",
            esc(driver),
            cluster.executors.len(),
            cluster.lost,
            cluster.tasks,
            cluster.local_tasks
        );
        if !cluster.executors.is_empty() {
            html.push_str("<table><tr><th>executor</th><th>cores</th><th>process</th></tr>");
            for e in &cluster.executors {
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    e.id, e.cores, e.pid
                );
            }
            html.push_str("</table>");
        }
    }
    let _ = write!(
        html,
        "<h2>Operator graph ({}{})</h2><table><tr><th>id</th><th>kind</th><th>operation</th><th>reads</th><th>window</th><th>slide</th><th>where</th></tr>",
        graph.source,
        graph
            .fingerprint
            .as_ref()
            .map_or(String::new(), |f| format!(", fingerprint {f}"))
    );
    for op in &graph.operators {
        let _ = write!(
            html,
            "<tr><td>#{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            op.id,
            esc(op.kind.as_deref().unwrap_or("")),
            esc(&op.name),
            op.parents
                .iter()
                .map(|p| format!("#{p}"))
                .collect::<Vec<_>>()
                .join(", "),
            op.window_ms.map_or(String::new(), |w| format!("{w} ms")),
            op.slide_ms.map_or(String::new(), |s| format!("{s} ms")),
            esc(&op.location),
        );
    }
    html.push_str("</table><h2>Environment</h2><table><tr><th>setting</th><th>value</th></tr>");
    for (k, v) in environment {
        let _ = write!(html, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
    }
    html.push_str("</table></body></html>\n");
    html
}

/// The input streams that report counters, one row each, one column per counter name any of
/// them has (blank where a stream has no such counter, which is not the same as zero). Left
/// out when no stream reports any: receivers have their own table.
fn inputs_table(html: &mut String, inputs: &[InputView]) {
    if inputs.is_empty() {
        return;
    }
    let mut names: Vec<&str> = inputs
        .iter()
        .flat_map(|i| i.counters.keys().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    html.push_str("<h2>Input streams</h2><table><tr><th>stream</th><th>input</th>");
    for n in &names {
        let _ = write!(html, "<th>{}</th>", esc(&n.replace('_', " ")));
    }
    html.push_str("</tr>");
    for i in inputs {
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td title="{}">{}</td>"#,
            i.stream,
            esc(&i.location),
            esc(&i.name)
        );
        for n in &names {
            match i.counters.get(*n) {
                Some(v) => {
                    let _ = write!(html, "<td>{v}</td>");
                }
                None => html.push_str("<td></td>"),
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_one_point_per_known_value_and_the_reference_line() {
        let svg = chart(
            "t",
            " ms",
            &[Some(10.0), None, Some(30.0)],
            Some(20.0),
            TOTAL_COLOR,
        );
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("stroke-dasharray"));
        assert!(svg.contains("batch interval"));
        let empty = chart("t", "", &[None, None], None, TOTAL_COLOR);
        assert!(empty.contains("no batches yet") && !empty.contains("<circle"));
    }

    #[test]
    fn the_inputs_table_has_a_column_per_counter_name_and_blanks_where_a_stream_lacks_one() {
        let view = |stream, name: &str, counters: &[(&str, u64)]| InputView {
            stream,
            name: name.into(),
            location: "src/main.rs:7".into(),
            counters: counters.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        };
        let mut html = String::new();
        inputs_table(&mut html, &[]);
        assert_eq!(html, "", "no section without a reporting stream");
        inputs_table(
            &mut html,
            &[
                view(
                    0,
                    "file_stream",
                    &[("records_skipped", 1), ("files_read", 2)],
                ),
                view(4, "<kafka>", &[("records_lost", 3)]),
            ],
        );
        assert!(
            html.contains("<th>files read</th><th>records lost</th><th>records skipped</th></tr>")
        );
        assert!(html.contains(">file_stream</td><td>2</td><td></td><td>1</td></tr>"));
        assert!(html.contains(">&lt;kafka&gt;</td><td></td><td>3</td><td></td></tr>"));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
    }
}
