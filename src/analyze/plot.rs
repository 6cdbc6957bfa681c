//! `--plot FILE.svg`: restarts per UTC day, one line per node (plotters, SVG backend). Renders to
//! a string; the caller writes the file.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::report::{Report, day_name};
use crate::restart_log::timestamp::days_from_civil;

/// The picture's size in pixels.
const SIZE: (u32, u32) = (1200, 600);

/// The SVG document of restarts per day per node.
pub fn restarts_per_day_svg(report: &Report) -> Result<String, String> {
    let mut svg = String::new();
    draw(report, &mut svg).map_err(|e| format!("cannot draw the plot: {e}"))?;
    Ok(svg)
}

fn day_number(name: &str) -> Option<i64> {
    let date = chrono::NaiveDate::parse_from_str(name, "%Y-%m-%d").ok()?;
    use chrono::Datelike as _;
    Some(days_from_civil(
        i64::from(date.year()),
        date.month(),
        date.day(),
    ))
}

fn draw(report: &Report, svg: &mut String) -> Result<(), String> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(text)?;
    // Per node: restarts on each day, every day of the range present (0 when none).
    let days: Vec<(i64, &BTreeMap<String, u64>)> = report
        .days
        .iter()
        .filter_map(|day| Some((day_number(&day.day)?, &day.nodes)))
        .collect();
    let (first, last) = match (days.first(), days.last()) {
        (Some(first), Some(last)) => (first.0, last.0),
        _ => {
            root.draw(&Text::new(
                "no restarts",
                (SIZE.0 as i32 / 2 - 40, SIZE.1 as i32 / 2),
                ("sans-serif", 20),
            ))
            .map_err(text)?;
            root.present().map_err(text)?;
            return Ok(());
        }
    };
    let most = days
        .iter()
        .flat_map(|(_, nodes)| nodes.values().copied())
        .max()
        .unwrap_or(1)
        .max(1);
    let title = format!(
        "restarts per day (UTC), {} to {}",
        day_name(first),
        day_name(last)
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(first..(last + 1).max(first + 1), 0u64..most + most / 10 + 1)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc("day")
        .y_desc("restarts")
        .x_labels(10)
        .x_label_formatter(&|day| day_name(*day))
        .draw()
        .map_err(text)?;
    let by_day: BTreeMap<i64, &BTreeMap<String, u64>> = days.iter().copied().collect();
    for (index, node) in report.nodes.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        let points: Vec<(i64, u64)> = (first..=last)
            .map(|day| {
                let n = by_day
                    .get(&day)
                    .and_then(|nodes| nodes.get(&node.node))
                    .copied()
                    .unwrap_or(0);
                (day, n)
            })
            .collect();
        chart
            // A dot on every day: one day of data is a point, which a line alone would not show.
            .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(3))
            .map_err(text)?
            .label(node.node.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(text)?;
    root.present().map_err(text)?;
    Ok(())
}

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}
