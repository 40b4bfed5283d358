//! The `metrics` summary: one row per side, service and method with calls, errors and
//! latency percentiles, read from a provider's Prometheus text.
//!
//! Percentiles come from the `rpc_latency_seconds` histogram buckets, so they are bucket
//! bounds ("at most 2.5 ms"), the resolution the provider records at.

use std::collections::BTreeMap;

/// One row: the counters and the latency histogram of one (side, service, method).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) calls: f64,
    pub(crate) errors: f64,
    /// (upper bound in seconds, cumulative count), sorted by bound; `+Inf` is `f64::INFINITY`.
    pub(crate) buckets: Vec<(f64, f64)>,
}

impl Row {
    /// The bucket bound under which at least `q` (0..1) of the timed calls fell; `None`
    /// without timed calls.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        self.buckets
            .iter()
            .find(|(_, count)| *count >= q * total)
            .map(|(bound, _)| *bound)
    }
}

/// (side, service, method) → row.
pub(crate) type Summary = BTreeMap<(String, String, String), Row>;

/// The value of label `name` in a `{a="x",b="y"}` label set.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = labels;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let end = after.find('"')?;
        if key.trim_start_matches(',') == name {
            return Some(&after[..end]);
        }
        rest = &after[end + 1..];
    }
    None
}

/// Reads the framework's series out of Prometheus text; other lines are skipped.
pub(crate) fn parse(text: &str) -> Summary {
    let mut out = Summary::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let Some((name, labels)) = series.split_once('{') else {
            continue;
        };
        let labels = labels.trim_end_matches('}');
        let key = match (
            label(labels, "side"),
            label(labels, "service"),
            label(labels, "method"),
        ) {
            (Some(side), Some(service), Some(method)) => {
                (side.to_string(), service.to_string(), method.to_string())
            }
            _ => continue,
        };
        match name {
            "rpc_calls_total" => out.entry(key).or_default().calls += value,
            "rpc_errors_total" => out.entry(key).or_default().errors += value,
            "rpc_latency_seconds_bucket" => {
                let bound = match label(labels, "le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(b) => match b.parse() {
                        Ok(b) => b,
                        Err(_) => continue,
                    },
                    None => continue,
                };
                let row = out.entry(key).or_default();
                row.buckets.push((bound, value));
                row.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            _ => {}
        }
    }
    out
}

fn duration(bound: Option<f64>) -> String {
    match bound {
        None => "-".into(),
        Some(b) if b.is_infinite() => "> 10 s".into(),
        Some(b) if b < 1.0 => format!("<= {} ms", b * 1000.0),
        Some(b) => format!("<= {b} s"),
    }
}

/// The summary as an aligned table (or a line saying there is nothing yet).
pub(crate) fn render(summary: &Summary) -> String {
    if summary.is_empty() {
        return "no calls recorded yet".into();
    }
    let header = ["side", "service", "method", "calls", "errors", "p50", "p99"].map(String::from);
    let mut rows = vec![header];
    for ((side, service, method), row) in summary {
        rows.push([
            side.clone(),
            service.clone(),
            method.clone(),
            format!("{}", row.calls),
            format!("{}", row.errors),
            duration(row.quantile(0.5)),
            duration(row.quantile(0.99)),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE rpc_calls_total counter
rpc_calls_total{side="provider",service="org.example.Greeter:1.0.0",method="greet"} 10
rpc_errors_total{side="provider",service="org.example.Greeter:1.0.0",method="greet",kind="service_error"} 2
rpc_errors_total{side="provider",service="org.example.Greeter:1.0.0",method="greet",kind="timeout"} 1
rpc_latency_seconds_bucket{side="provider",service="org.example.Greeter:1.0.0",method="greet",le="0.0005"} 3
rpc_latency_seconds_bucket{side="provider",service="org.example.Greeter:1.0.0",method="greet",le="0.001"} 6
rpc_latency_seconds_bucket{side="provider",service="org.example.Greeter:1.0.0",method="greet",le="0.0025"} 9
rpc_latency_seconds_bucket{side="provider",service="org.example.Greeter:1.0.0",method="greet",le="+Inf"} 10
rpc_latency_seconds_sum{side="provider",service="org.example.Greeter:1.0.0",method="greet"} 0.01
rpc_in_flight{side="provider",service="org.example.Greeter:1.0.0",method="greet"} 0
process_start_time_seconds 12
"#;

    #[test]
    fn rows_add_error_kinds_and_read_percentiles_from_buckets() {
        let s = parse(TEXT);
        let row = &s[&(
            "provider".to_string(),
            "org.example.Greeter:1.0.0".to_string(),
            "greet".to_string(),
        )];
        assert_eq!((row.calls, row.errors), (10.0, 3.0));
        assert_eq!(row.quantile(0.5), Some(0.001));
        assert_eq!(row.quantile(0.99), Some(f64::INFINITY));
        let table = render(&s);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        assert!(lines[0].starts_with("side      service"), "{table}");
        assert!(
            lines[1].contains("greet   10     3       <= 1 ms  > 10 s"),
            "{table}"
        );
    }

    #[test]
    fn nothing_recorded_and_garbage_lines_are_harmless() {
        assert_eq!(render(&parse("")), "no calls recorded yet");
        let s = parse("rpc_calls_total{side=\"x\" 1\nrpc_calls_total{} nope\n{}\n");
        assert!(s.is_empty());
    }
}
