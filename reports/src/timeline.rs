//! A key's operations as a timeline: one lane per process, a bar from invocation to completion
//! for each operation, the culprit in red and the write it missed outlined in purple. An
//! operation whose outcome is unknown may take effect at any later time: a thin line continues
//! its bar to the right edge. Marks (faults that began) are vertical lines with their label; one
//! that falls before the operations shown is an arrow at the left edge with its time.
//!
//! Two timelines use it: the operations around the failure, and the core (the few operations
//! that cannot be ordered on their own). The x axis is seconds since the run started, to the
//! microsecond, like every time in the anomaly section.

use std::path::Path;

use checker::OpSummary;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::ReportError;
use crate::plots::{FONT, PlotResult, WIDTH, fit, fonts, plot_error, series_color};
use crate::run::{Status, seconds};

/// A moment to mark on the timeline.
pub struct Mark {
    /// History time, nanoseconds.
    pub at_ns: u64,
    pub label: String,
}

/// One operation to draw.
pub struct Bar<'a> {
    pub op: &'a OpSummary,
    /// How it ended, with a CAS miss told apart from a failure.
    pub status: Status,
    /// The operation the checker could not linearize: red, outlined.
    pub culprit: bool,
    /// The acknowledged write the culprit missed: outlined in purple.
    pub missed: bool,
}

const CULPRIT: RGBColor = RGBColor(214, 39, 40);
const MISSED: RGBColor = RGBColor(120, 40, 200);
const MARK: RGBColor = RGBColor(90, 90, 90);

/// Draws `bars` under `caption` into the PNG at `path`; `plot` names it in an error.
pub fn timeline(
    plot: &'static str,
    caption: &str,
    bars: &[Bar<'_>],
    marks: &[Mark],
    path: &Path,
) -> Result<(), ReportError> {
    fonts();
    draw_timeline(caption, bars, marks, path).map_err(plot_error(plot))
}

/// A bar's colour: red for the culprit, else by how it ended (a CAS miss in the colour the
/// other plots give it).
fn bar_color(b: &Bar<'_>) -> RGBColor {
    if b.culprit {
        return CULPRIT;
    }
    match b.status {
        Status::Ok => RGBColor(90, 130, 190),
        Status::CasMiss => series_color(checker::Func::Cas, Status::CasMiss),
        Status::Fail => RGBColor(170, 170, 170),
        Status::Info => RGBColor(240, 170, 60),
    }
}

/// A bar's label, drawn after every bar so that no bar covers one.
struct BarLabel {
    at: (f64, f64),
    /// Pixels down from the bar's middle.
    dy: i32,
    /// Pixels available before the next label of the same row.
    room: i32,
    culprit: bool,
    color: RGBColor,
    text: String,
}

fn draw_timeline(caption: &str, bars: &[Bar<'_>], marks: &[Mark], path: &Path) -> PlotResult {
    // Lanes are processes.
    let mut bars: Vec<&Bar<'_>> = bars.iter().collect();
    bars.sort_by_key(|b| (b.op.process, b.op.invoke));
    let ops: Vec<&OpSummary> = bars.iter().map(|b| b.op).collect();
    let mut processes: Vec<u64> = ops.iter().map(|o| o.process).collect();
    processes.dedup();
    let lane = |p: u64| processes.binary_search(&p).expect("listed") as f64;
    let t0 = ops.iter().map(|o| o.invoke).min().unwrap_or(0);
    let t1 = ops
        .iter()
        .map(|o| o.complete.unwrap_or(o.invoke))
        .max()
        .unwrap_or(t0)
        .max(t0 + 1);
    let s = |t: u64| t as f64 / 1e9;
    let span = s(t1) - s(t0);
    let (x_lo, x_hi) = (s(t0) - span * 0.02, s(t1) + span * 0.25);
    let n = processes.len() as f64;
    // Headroom above the top lane for the marks' labels.
    let top = if marks.is_empty() { n - 0.4 } else { n + 0.3 };
    let height = 110 + 64 * processes.len() as u32 + if marks.is_empty() { 0 } else { 48 };
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, (FONT, 18))
        .margin(12)
        .margin_right(28)
        .x_label_area_size(40)
        .y_label_area_size(110)
        .build_cartesian_2d(x_lo..x_hi, -0.6f64..top)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the run started")
        .x_labels(7)
        .x_label_formatter(&|v| format!("{v:.6}"))
        .y_labels(0)
        .disable_y_mesh()
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let (bx, _) = chart.plotting_area().get_base_pixel();
    for p in &processes {
        let (_, py) = chart.backend_coord(&(x_lo, lane(*p)));
        root.draw(&Text::new(
            format!("process {p}"),
            (bx - 100, py - 6),
            (FONT, 13).into_font(),
        ))?;
    }
    draw_marks(&mut chart, marks, (x_lo, x_hi), top)?;
    // Labels alternate above and below the bars of a lane and are cut to the room before the
    // next label of the same row; the table under the plot has them in full.
    let x_right = chart.backend_coord(&(x_hi, 0.0)).0;
    let mut labels = Vec::new();
    let mut nth_in_lane = 0;
    for (i, o) in ops.iter().enumerate() {
        nth_in_lane = if i > 0 && ops[i - 1].process == o.process {
            nth_in_lane + 1
        } else {
            0
        };
        let y = lane(o.process);
        let (is_culprit, is_missed) = (bars[i].culprit, bars[i].missed);
        let color = bar_color(bars[i]);
        let (start, end) = (s(o.invoke), o.complete.map_or(x_hi, s));
        let end = end.max(start + span / 400.0);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(start, y - 0.13), (end, y + 0.13)],
            color.filled(),
        )))?;
        if is_culprit || is_missed {
            let outline = if is_culprit { BLACK } else { MISSED };
            chart.draw_series(std::iter::once(Rectangle::new(
                [(start, y - 0.17), (end, y + 0.17)],
                outline.stroke_width(2),
            )))?;
        }
        if bars[i].status == Status::Info {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(end, y), (x_hi, y)],
                color.stroke_width(1),
            )))?;
        }
        let next_in_row = ops
            .get(i + 2)
            .filter(|n| n.process == o.process)
            .map_or(x_right, |n| chart.backend_coord(&(s(n.invoke), y)).0);
        labels.push(BarLabel {
            at: (start, y),
            dy: if nth_in_lane % 2 == 0 { -26 } else { 15 },
            room: next_in_row - chart.backend_coord(&(start, y)).0 - 6,
            culprit: is_culprit,
            color: if is_missed { MISSED } else { color },
            text: if is_missed {
                format!("#{} {} (missed)", o.index, o.text)
            } else {
                format!("#{} {}", o.index, o.text)
            },
        });
    }
    // The culprit's label last, so that nothing covers it.
    labels.sort_by_key(|l| l.culprit);
    for l in labels {
        let style = if l.culprit || l.color == MISSED {
            (FONT, 13)
                .into_font()
                .style(FontStyle::Bold)
                .color(&l.color)
        } else {
            (FONT, 12).into_font().color(&BLACK)
        };
        let text = fit(&root, l.text, &style, l.room.max(40) as u32);
        // On a pale backing, so that a mark or a grid line through it does not cross the text.
        let (w, h) = root.estimate_text_size(&text, &style)?;
        let backing = Rectangle::new(
            [(-2, l.dy - 1), (w as i32 + 2, l.dy + h as i32 + 1)],
            WHITE.filled(),
        );
        chart.draw_series(std::iter::once(
            EmptyElement::at(l.at) + backing + Text::new(text, (0, l.dy), style),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// Each mark as a vertical line over the lanes with its label at the top, alternating two label
/// rows; a mark before the operations shown as an arrow at the left edge.
fn draw_marks(
    chart: &mut ChartContext<
        '_,
        BitMapBackend<'_>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    marks: &[Mark],
    (x_lo, x_hi): (f64, f64),
    top: f64,
) -> PlotResult {
    let style = (FONT, 12).into_font().color(&MARK);
    for (i, m) in marks.iter().enumerate() {
        let x = m.at_ns as f64 / 1e9;
        let dy = 4 + 15 * (i % 2) as i32;
        if x < x_lo {
            chart.draw_series(std::iter::once(
                EmptyElement::at((x_lo, top))
                    + Text::new(
                        format!("← {} at {}", m.label, seconds(m.at_ns)),
                        (4, dy),
                        style.clone(),
                    ),
            ))?;
        } else if x <= x_hi {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, -0.6), (x, top)],
                MARK.stroke_width(2),
            )))?;
            // Right of the line, or left of it when it would run past the plot's right edge.
            let area = chart.plotting_area();
            let wide = area.estimate_text_size(&m.label, &style)?.0 as i32;
            let room = area.map_coordinate(&(x_hi, top)).0 - area.map_coordinate(&(x, top)).0;
            let dx = if wide + 8 <= room { 4 } else { -wide - 4 };
            chart.draw_series(std::iter::once(
                EmptyElement::at((x, top)) + Text::new(m.label.clone(), (dx, dy), style.clone()),
            ))?;
        }
    }
    Ok(())
}
