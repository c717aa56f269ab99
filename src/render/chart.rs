//! The Subscribers page's growth chart: an SVG drawn here, on the server,
//! so the page needs no chart script. Pure: weekly counts in, markup out.
//!
//! Each week is a column: the addresses confirmed that week rise above the
//! zero line, those lost (unsubscribed, bounced, complained) stack below
//! it, so growth and churn read at a glance. The SVG has a viewBox and no
//! fixed width: it scales down to a 375 px phone.

use std::fmt::Write as _;

use crate::store::dashboard::{WeekCount, WEEK_MILLIS};
use crate::store::subscribers::SubscriberState;

/// The series drawn, in stacking order, with the CSS class of each (the
/// colours live in admin.css; the fills here are the fallbacks).
const SERIES: [(SubscriberState, &str, &str, &str); 4] = [
    (SubscriberState::Active, "confirmed", "confirmed", "#2e7d32"),
    (
        SubscriberState::Unsubscribed,
        "unsubscribed",
        "unsubscribed",
        "#f9a825",
    ),
    (SubscriberState::Bounced, "bounced", "bounced", "#c62828"),
    (
        SubscriberState::Complained,
        "complained",
        "complained",
        "#6a1b9a",
    ),
];

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 28.0;

/// One week's column: what rose and what fell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Week {
    /// By [`SERIES`] order.
    counts: [i64; 4],
}

impl Week {
    fn gained(&self) -> i64 {
        self.counts[0]
    }

    fn lost(&self) -> i64 {
        self.counts[1..].iter().sum()
    }
}

/// `weeks` weekly columns ending with the week starting `last_week`
/// (Monday 00:00 UTC, Unix ms), from counts as the store gives them.
/// Counts outside the window and of other states are ignored.
pub fn growth_chart_svg(counts: &[WeekCount], last_week: i64, weeks: usize) -> String {
    let first_week = last_week - WEEK_MILLIS * (weeks.saturating_sub(1) as i64);
    let mut columns = vec![Week::default(); weeks];
    for count in counts {
        let offset = (count.week_start - first_week).div_euclid(WEEK_MILLIS);
        let Some(column) = usize::try_from(offset)
            .ok()
            .and_then(|i| columns.get_mut(i))
        else {
            continue;
        };
        if let Some(series) = SERIES.iter().position(|(state, ..)| *state == count.state) {
            column.counts[series] += count.count.max(0);
        }
    }
    draw(&columns, first_week)
}

fn draw(columns: &[Week], first_week: i64) -> String {
    let max_up = columns.iter().map(Week::gained).max().unwrap_or(0).max(1);
    let max_down = columns.iter().map(Week::lost).max().unwrap_or(0);
    let plot_height = HEIGHT - TOP - BOTTOM;
    // The zero line splits the plot in proportion to the largest rise and fall.
    let scale = plot_height / (max_up + max_down) as f64;
    let zero_y = TOP + max_up as f64 * scale;
    let slot = (WIDTH - LEFT - RIGHT) / columns.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-labelledby="growth-chart-title"><title id="growth-chart-title">Subscribers confirmed (above the line) and lost (below) per week</title>"#
    );
    legend(&mut svg);
    axis(&mut svg, zero_y, max_up, max_down, scale);
    for (index, week) in columns.iter().enumerate() {
        let x = LEFT + index as f64 * slot + (slot - bar) / 2.0;
        let start = first_week + WEEK_MILLIS * index as i64;
        let label = escape(&week_label(start));
        let mut below = zero_y;
        for (series, (_, name, class, fill)) in SERIES.iter().enumerate() {
            let count = week.counts[series];
            if count == 0 {
                continue;
            }
            let height = count as f64 * scale;
            let y = if series == 0 {
                zero_y - height
            } else {
                below += height;
                below - height
            };
            let _ = write!(
                svg,
                r#"<rect class="bar {class}" data-week="{label}" data-count="{count}" x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{height:.1}" fill="{fill}"><title>{label}: {count} {name}</title></rect>"#
            );
        }
    }
    week_ticks(&mut svg, columns.len(), first_week, slot);
    svg.push_str("</svg>");
    svg
}

fn legend(svg: &mut String) {
    let mut x = LEFT;
    for (_, name, class, fill) in SERIES {
        let _ = write!(
            svg,
            r#"<rect class="legend {class}" x="{x}" y="6" width="10" height="10" fill="{fill}"/><text x="{}" y="15" font-size="11">{}</text>"#,
            x + 14.0,
            escape(name)
        );
        x += 28.0 + 7.0 * name.len() as f64;
    }
}

fn axis(svg: &mut String, zero_y: f64, max_up: i64, max_down: i64, scale: f64) {
    let right = WIDTH - RIGHT;
    let _ = write!(
        svg,
        r##"<line class="zero" x1="{LEFT}" y1="{zero_y:.1}" x2="{right}" y2="{zero_y:.1}" stroke="#555"/>"##
    );
    let top = zero_y - max_up as f64 * scale;
    let _ = write!(
        svg,
        r#"<text x="{}" y="{:.1}" font-size="10" text-anchor="end">{max_up}</text><text x="{}" y="{:.1}" font-size="10" text-anchor="end">0</text>"#,
        LEFT - 4.0,
        top + 8.0,
        LEFT - 4.0,
        zero_y + 3.0
    );
    if max_down > 0 {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" font-size="10" text-anchor="end">-{max_down}</text>"#,
            LEFT - 4.0,
            zero_y + max_down as f64 * scale
        );
    }
}

/// A date under every thirteenth week (about a quarter), and the last.
fn week_ticks(svg: &mut String, weeks: usize, first_week: i64, slot: f64) {
    for index in (0..weeks).filter(|i| i % 13 == 0 || *i + 1 == weeks) {
        let x = LEFT + index as f64 * slot + slot / 2.0;
        let label = escape(&week_label(first_week + WEEK_MILLIS * index as i64));
        let _ = write!(
            svg,
            r#"<text class="tick" x="{x:.1}" y="{}" font-size="10" text-anchor="middle">{label}</text>"#,
            HEIGHT - 8.0
        );
    }
}

fn week_label(start: i64) -> String {
    chrono::DateTime::from_timestamp_millis(start)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Text and attribute values both: the labels are dates and numbers
/// today, but nothing placed in markup goes unescaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dashboard::week_start;

    fn count(week: i64, state: SubscriberState, count: i64) -> WeekCount {
        WeekCount {
            week_start: week,
            state,
            count,
        }
    }

    fn bars<'a>(doc: &'a roxmltree::Document, class: &str) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("class") == Some(class))
            .collect()
    }

    #[test]
    fn bars_rise_for_confirmed_and_fall_for_losses() {
        let last = week_start(1_764_400_000_000);
        let counts = [
            count(last, SubscriberState::Active, 40),
            count(last, SubscriberState::Unsubscribed, 3),
            count(last, SubscriberState::Bounced, 2),
            count(last - WEEK_MILLIS, SubscriberState::Active, 10),
            count(last - WEEK_MILLIS, SubscriberState::Complained, 1),
            // Pending is not drawn; a week outside the window neither.
            count(last, SubscriberState::Pending, 99),
            count(last - 60 * WEEK_MILLIS, SubscriberState::Active, 500),
        ];
        let svg = growth_chart_svg(&counts, last, 52);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert!(root.attribute("viewBox").is_some(), "scales by viewBox");
        assert_eq!(root.attribute("width"), Some("100%"));

        let confirmed = bars(&doc, "bar confirmed");
        let counts: Vec<&str> = confirmed
            .iter()
            .filter_map(|b| b.attribute("data-count"))
            .collect();
        assert_eq!(counts, ["10", "40"], "oldest first, the old week left out");
        assert_eq!(bars(&doc, "bar unsubscribed").len(), 1);
        assert_eq!(bars(&doc, "bar bounced").len(), 1);
        assert_eq!(bars(&doc, "bar complained").len(), 1);
        assert!(
            doc.descendants()
                .all(|n| n.attribute("data-count") != Some("99")),
            "pending is not drawn"
        );

        // Heights follow the counts: 40 is four times 10, and the zero line
        // is where confirmed bars end and loss bars begin.
        let height = |n: &roxmltree::Node| -> f64 {
            n.attribute("height")
                .and_then(|h| h.parse().ok())
                .unwrap_or(0.0)
        };
        let ratio = height(&confirmed[1]) / height(&confirmed[0]);
        assert!((ratio - 4.0).abs() < 0.05, "{ratio}");
        let bottom = |n: &roxmltree::Node| -> f64 {
            n.attribute("y").and_then(|y| y.parse().ok()).unwrap_or(0.0) + height(n)
        };
        let unsubscribed = &bars(&doc, "bar unsubscribed")[0];
        let top_of_loss: f64 = unsubscribed
            .attribute("y")
            .and_then(|y| y.parse().ok())
            .unwrap_or(0.0);
        assert!((bottom(&confirmed[1]) - top_of_loss).abs() < 0.2);
    }

    #[test]
    fn an_empty_list_is_an_empty_well_formed_chart() {
        let svg = growth_chart_svg(&[], week_start(1_764_400_000_000), 52);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        assert!(doc
            .descendants()
            .all(|n| n.attribute("class").is_none_or(|c| !c.starts_with("bar "))));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
