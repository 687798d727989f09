//! SVG bar charts, drawn on the server: no script and no library needed to
//! see them, and nothing fetched from elsewhere.

use maud::{Markup, html};

/// One bar: its value, and the text shown when the pointer is on it.
pub struct Bar {
    pub value: f64,
    pub label: String,
}

const WIDTH: f64 = 1100.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 18.0;

/// A bar chart of `bars` from left (oldest) to right, under `ceiling` (a
/// horizontal line, such as a quota's limit, labelled `ceiling_label`);
/// `first` and `last` label the two ends of the time axis. A bar at or over
/// 80 % of the ceiling is drawn in orange, at or over it in red.
pub fn bars(id: &str, bars: &[Bar], ceiling: Option<(f64, &str)>, unit: &str, first: &str, last: &str) -> Markup {
    let top_value = bars
        .iter()
        .map(|b| b.value)
        .chain(ceiling.map(|(c, _)| c * 1.1))
        .fold(1.0_f64, f64::max);
    let plot_h = HEIGHT - BOTTOM - 4.0;
    let y = |v: f64| 4.0 + plot_h - (v / top_value) * plot_h;
    let step = (WIDTH - LEFT) / bars.len().max(1) as f64;
    let level = |v: f64| match ceiling {
        Some((c, _)) if v >= c => "bar full",
        Some((c, _)) if v >= 0.8 * c => "bar high",
        _ => "bar",
    };
    html! {
        svg id=(id) class="chart" viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" {
            line class="axis" x1=(LEFT) y1=(y(0.0)) x2=(WIDTH) y2=(y(0.0)) {}
            text class="tick" x=(LEFT - 4.0) y=(y(0.0)) text-anchor="end" { "0" }
            @if ceiling.is_none() {
                text class="tick" x=(LEFT - 4.0) y=(y(top_value) + 8.0) text-anchor="end" { (compact(top_value)) (unit) }
            }
            @for (i, bar) in bars.iter().enumerate() {
                @let h = y(0.0) - y(bar.value);
                @if bar.value > 0.0 {
                    rect class=(level(bar.value)) x=(format!("{:.1}", LEFT + i as f64 * step + 0.5))
                        y=(format!("{:.1}", y(bar.value))) width=(format!("{:.1}", (step - 1.0).max(0.5)))
                        height=(format!("{:.1}", h.max(0.5))) {
                        title { (bar.label) }
                    }
                }
            }
            @if let Some((c, label)) = ceiling {
                line class="ceiling" x1=(LEFT) y1=(format!("{:.1}", y(c))) x2=(WIDTH) y2=(format!("{:.1}", y(c))) {}
                text class="ceiling-label" x=(WIDTH - 2.0) y=(format!("{:.1}", y(c) - 3.0)) text-anchor="end" { (label) }
                text class="tick" x=(LEFT - 4.0) y=(format!("{:.1}", y(c) + 3.0)) text-anchor="end" { (compact(c)) (unit) }
            }
            text class="tick" x=(LEFT) y=(HEIGHT - 4.0) { (first) }
            text class="tick" x=(WIDTH) y=(HEIGHT - 4.0) text-anchor="end" { (last) }
        }
    }
}

/// A number in a few characters: 950, 1.2k, 3.4M.
fn compact(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e4 => format!("{:.0}k", v / 1e3),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v if v >= 10.0 => format!("{v:.0}"),
        v => format!("{v:.1}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_drawn_by_level_under_the_ceiling() {
        let values = [0.0, 50.0, 85.0, 120.0];
        let list: Vec<Bar> = values
            .iter()
            .map(|v| Bar {
                value: *v,
                label: format!("{v}"),
            })
            .collect();
        let svg = bars("c", &list, Some((100.0, "limit 100")), "%", "10:00", "10:10").into_string();
        // An empty bucket has no bar; each other one is classed by level.
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        assert!(svg.contains(r#"class="bar high""#) && svg.contains(r#"class="bar full""#));
        assert!(svg.contains("limit 100") && svg.contains("10:10"));
        assert_eq!(compact(1234.0), "1.2k");
    }
}
