//! The plots, drawn with plotters into PNG files with the bundled DejaVu Sans (no system fonts).
//!
//! Every plot over time shares the x axis (seconds since the run started) and shades the fault
//! windows with their labels. The latency scatter is thinned by pixel: of the points of one
//! series (function and outcome) that land on the same pixel only one is drawn, which changes
//! nothing a reader can see and keeps a 1,000,000-operation run fast. Quantiles and throughput
//! are computed from every operation.

use std::error::Error;
use std::path::Path;
use std::sync::Once;

use checker::Func;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::ReportError;
use crate::results::FaultWindow;
use crate::run::{Buckets, FUNCS, Op, Run, Status, quantile};

pub(crate) type PlotResult = Result<(), Box<dyn Error>>;

pub(crate) const FONT: &str = "sans-serif";
pub const WIDTH: u32 = 1200;

/// Registers the bundled font once per process; plotters looks fonts up by name at draw time.
pub(crate) fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Both faces are valid TrueType files shipped in the dejavu crate; failure would be a
        // build defect, and drawing would then report FontUnavailable with the plot's name.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

pub(crate) fn plot_error(plot: &'static str) -> impl FnOnce(Box<dyn Error>) -> ReportError {
    move |e| ReportError::Plot {
        plot,
        message: e.to_string(),
    }
}

pub fn func_color(f: Func) -> RGBColor {
    match f {
        Func::Read => RGBColor(31, 119, 180),
        Func::Write => RGBColor(255, 127, 14),
        Func::Cas => RGBColor(44, 160, 44),
        Func::Delete => RGBColor(148, 103, 189),
        Func::Append => RGBColor(140, 86, 75),
    }
}

/// The colour of one series: the function's, except that a CAS that did not succeed has its own
/// (a miss one, a failure or unknown outcome another), because CAS misses are common and a CAS
/// mark's shape alone does not separate them from successes at a glance.
pub fn series_color(f: Func, status: Status) -> RGBColor {
    match (f, status) {
        (Func::Cas, Status::CasMiss) => RGBColor(23, 190, 207),
        (Func::Cas, Status::Fail | Status::Info) => RGBColor(227, 119, 194),
        _ => func_color(f),
    }
}

/// A series' name in a legend: `read ok`, `cas miss`.
fn series_name(f: Func, status: Status) -> String {
    match status {
        Status::CasMiss => format!("{} miss", f.name()),
        _ => format!("{} {}", f.name(), status.name()),
    }
}

fn fault_color(w: &FaultWindow) -> RGBColor {
    match w.fault.get("kind").and_then(|k| k.as_str()) {
        Some("kill") => RGBColor(214, 39, 40),
        Some("pause") => RGBColor(188, 160, 34),
        _ => RGBColor(110, 110, 110),
    }
}

/// Shades each fault window over the whole height of the chart and labels it at the top, in
/// the first of two label rows where the label does not run into the one before it. A window
/// with no room for its label (many short faults) stays shaded but unlabelled: the faults table
/// names every one.
fn shade_faults<Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<RangedCoordf64, Y>>,
    faults: &[FaultWindow],
    y: (f64, f64),
    x_max: f64,
) -> PlotResult {
    // Where each label row is free again, in pixels.
    let mut free_from = [i32::MIN; 2];
    for w in faults {
        let (s, e) = (w.start_ns as f64 / 1e9, (w.end_ns as f64 / 1e9).min(x_max));
        let color = fault_color(w);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(s, y.0), (e.max(s + x_max / 1000.0), y.1)],
            color.mix(0.13).filled(),
        )))?;
        let left = chart.backend_coord(&(s, y.1)).0 + 3;
        let Some(row) = free_from.iter().position(|&x| left >= x) else {
            continue;
        };
        free_from[row] = left + label_width(&w.label) + 8;
        let style = (FONT, 12).into_font().color(&color.mix(0.9));
        chart.draw_series(std::iter::once(
            EmptyElement::at((s, y.1))
                + Text::new(w.label.clone(), (3, 3 + 14 * row as i32), style),
        ))?;
    }
    Ok(())
}

/// A generous estimate of a 12 px label's width in pixels (the font is not measured).
fn label_width(label: &str) -> i32 {
    (label.chars().count() as i32) * 7
}

/// The chart every plot over the run's time axis starts from: x in seconds since the start, the
/// common margins, mesh and fonts, and the fault windows shaded over `y_bounds`.
pub(crate) fn time_chart<'a, 'b, Y>(
    area: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    caption: (String, u32),
    x_max: f64,
    (y, y_bounds): (Y, (f64, f64)),
    (y_desc, y_fmt): (&str, &dyn Fn(&f64) -> String),
    faults: &[FaultWindow],
) -> Result<TimeChart<'a, 'b, Y::CoordDescType>, Box<dyn Error>>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption.0, (FONT, caption.1))
        .margin(8)
        .margin_right(28)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, y)?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc(y_desc)
        .y_label_formatter(y_fmt)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    shade_faults(&mut chart, faults, y_bounds, x_max)?;
    Ok(chart)
}

/// The legend, in the upper right corner over a translucent white box.
pub(crate) fn legend<'a, 'b: 'a, Y: Ranged>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, Y>>,
    size: u32,
) -> PlotResult {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

pub(crate) type TimeChart<'a, 'b, Y> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

/// `text`, cut with an ellipsis so that it is at most `width` pixels wide in `style`.
pub(crate) fn fit<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: String,
    style: &TextStyle<'_>,
    width: u32,
) -> String {
    let wide = |t: &str| area.estimate_text_size(t, style).map_or(0, |(w, _)| w);
    if wide(&text) <= width {
        return text;
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let cut: String = chars.iter().chain(std::iter::once(&'…')).collect();
        if wide(&cut) <= width {
            return cut;
        }
    }
    String::new()
}

/// A log axis range from `lo` to `hi` (milliseconds), widened to powers of ten.
fn log_range(lo: f64, hi: f64) -> (f64, f64) {
    let lo = 10f64.powf(lo.max(0.001).log10().floor());
    let hi = 10f64.powf(hi.max(lo * 10.0).log10().ceil());
    (lo, hi)
}

fn ms_label(v: &f64) -> String {
    if *v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Service time of every operation over time, by function and outcome, on a log scale.
/// Returns how many points were drawn.
pub fn latency_scatter(run: &Run, path: &Path) -> Result<usize, ReportError> {
    fonts();
    let mut drawn = 0;
    draw_latency_scatter(run, path, &mut drawn).map_err(plot_error("latency"))?;
    Ok(drawn)
}

fn draw_latency_scatter(run: &Run, path: &Path, drawn: &mut usize) -> PlotResult {
    let x_max = (run.end_ns as f64 / 1e9).max(1.0);
    let (lo, hi) = run
        .ops
        .iter()
        .filter_map(Op::service_ms)
        .fold((f64::MAX, 0f64), |(lo, hi), l| (lo.min(l), hi.max(l)));
    let (lo, hi) = if hi == 0.0 {
        (0.01, 100.0)
    } else {
        log_range(lo, hi)
    };
    let root = BitMapBackend::new(path, (WIDTH, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = time_chart(
        &root,
        (
            "Service time of every operation (log scale; faults shaded)".into(),
            20,
        ),
        x_max,
        ((lo..hi).log_scale(), (lo, hi)),
        ("service time (ms)", &ms_label),
        &run.results.faults,
    )?;

    let (w, h) = chart.plotting_area().dim_in_pixel();
    let (bx, by) = chart.plotting_area().get_base_pixel();
    // Outcomes drawn in this order so that the rarer miss, fail and info points end up on top.
    for status in Status::ALL {
        for f in FUNCS {
            let mut seen = vec![0u64; (w as usize * h as usize).div_ceil(64)];
            let mut points = Vec::new();
            let mut total = 0usize;
            for op in run.ops.iter().filter(|o| o.f == f && o.status == status) {
                let Some(l) = op.service_ms() else { continue };
                total += 1;
                let p = (op.invoke as f64 / 1e9, l.clamp(lo, hi));
                let (px, py) = chart.backend_coord(&p);
                let (cx, cy) = (
                    (px - bx).clamp(0, w as i32 - 1),
                    (py - by).clamp(0, h as i32 - 1),
                );
                let cell = cy as usize * w as usize + cx as usize;
                if seen[cell / 64] & (1 << (cell % 64)) == 0 {
                    seen[cell / 64] |= 1 << (cell % 64);
                    points.push(p);
                }
            }
            if total == 0 {
                continue;
            }
            *drawn += points.len();
            let color = series_color(f, status);
            let label = format!("{} ({total})", series_name(f, status));
            let series = match status {
                Status::Ok | Status::CasMiss => chart.draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 2, color.mix(0.55).filled())),
                )?,
                Status::Fail => chart.draw_series(
                    points
                        .into_iter()
                        .map(|p| Cross::new(p, 4, color.stroke_width(2))),
                )?,
                Status::Info => chart.draw_series(
                    points
                        .into_iter()
                        .map(|p| TriangleMarker::new(p, 5, color.stroke_width(2))),
                )?,
            };
            series.label(label).legend(move |(x, y)| match status {
                Status::Ok | Status::CasMiss => {
                    Circle::new((x + 8, y), 4, color.filled()).into_dyn()
                }
                Status::Fail => Cross::new((x + 8, y), 5, color.stroke_width(2)).into_dyn(),
                Status::Info => {
                    TriangleMarker::new((x + 8, y), 6, color.stroke_width(2)).into_dyn()
                }
            });
        }
    }
    legend(&mut chart, 13)?;
    root.present()?;
    Ok(())
}

const QUANTILES: [(&str, f64, RGBColor); 4] = [
    ("p50", 0.5, RGBColor(31, 119, 180)),
    ("p95", 0.95, RGBColor(44, 160, 44)),
    ("p99", 0.99, RGBColor(255, 127, 14)),
    ("max", 1.0, RGBColor(214, 39, 40)),
];

/// Service time quantiles of successful operations per time bucket, one panel per function.
pub fn quantiles_over_time(run: &Run, path: &Path) -> Result<(), ReportError> {
    fonts();
    draw_quantiles(run, path).map_err(plot_error("quantiles"))
}

fn draw_quantiles(run: &Run, path: &Path) -> PlotResult {
    let buckets = Buckets::over(run.end_ns);
    let x_max = (run.end_ns as f64 / 1e9).max(1.0);
    let funcs: Vec<Func> = FUNCS
        .into_iter()
        .filter(|f| run.ops.iter().any(|o| o.f == *f && o.status == Status::Ok))
        .collect();
    let panels = funcs.len().max(1);
    let root = BitMapBackend::new(path, (WIDTH, 60 + 240 * panels as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(40);
    title.titled(
        &format!(
            "Service time quantiles of ok operations per {:.1} s (log scale; faults shaded)",
            buckets.width_s()
        ),
        (FONT, 20),
    )?;
    for (f, area) in funcs.iter().zip(body.split_evenly((panels, 1))) {
        let mut per_bucket: Vec<Vec<f64>> = vec![Vec::new(); buckets.count];
        for op in run
            .ops
            .iter()
            .filter(|o| o.f == *f && o.status == Status::Ok)
        {
            if let Some(l) = op.service_ms() {
                per_bucket[buckets.index(op.invoke)].push(l);
            }
        }
        for b in &mut per_bucket {
            b.sort_unstable_by(f64::total_cmp);
        }
        let (lo, hi) = per_bucket
            .iter()
            .filter(|b| !b.is_empty())
            .fold((f64::MAX, 0f64), |(lo, hi), b| {
                (lo.min(quantile(b, 0.5)), hi.max(b[b.len() - 1]))
            });
        let (lo, hi) = log_range(lo, hi);
        let mut chart = time_chart(
            &area,
            (f.to_string(), 16),
            x_max,
            ((lo..hi).log_scale(), (lo, hi)),
            ("service time (ms)", &ms_label),
            &run.results.faults,
        )?;
        for (name, q, color) in QUANTILES {
            // One line per run of non-empty buckets: an outage shows as a gap, not a slope.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for (i, b) in per_bucket.iter().enumerate() {
                if b.is_empty() {
                    if !runs.last().expect("never empty").is_empty() {
                        runs.push(Vec::new());
                    }
                } else {
                    runs.last_mut()
                        .expect("never empty")
                        .push((buckets.center_s(i), quantile(b, q)));
                }
            }
            for (k, line) in runs.into_iter().filter(|r| !r.is_empty()).enumerate() {
                let series = chart
                    .draw_series(LineSeries::new(line, color.stroke_width(2)).point_size(2))?;
                if k == 0 {
                    series.label(name).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                    });
                }
            }
        }
        legend(&mut chart, 12)?;
    }
    root.present()?;
    Ok(())
}

/// Operations completed per second, by function, one panel per outcome that occurred.
pub fn throughput(run: &Run, path: &Path) -> Result<(), ReportError> {
    fonts();
    draw_throughput(run, path).map_err(plot_error("throughput"))
}

fn draw_throughput(run: &Run, path: &Path) -> PlotResult {
    // Over the workload only: the final reads after it would make a spike of a few operations
    // in a sliver of a bucket.
    let end_ns = match run.results.duration_s {
        d if d > 0.0 => ((d * 1e9) as u64).min(run.end_ns),
        _ => run.end_ns,
    };
    let buckets = Buckets::over(end_ns);
    let x_max = (end_ns as f64 / 1e9).max(1.0);
    let statuses: Vec<Status> = Status::ALL
        .into_iter()
        .filter(|s| *s == Status::Ok || run.ops.iter().any(|o| o.status == *s))
        .collect();
    let root =
        BitMapBackend::new(path, (WIDTH, 60 + 230 * statuses.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(40);
    title.titled(
        &format!(
            "Throughput: operations completed per second, in {:.1} s buckets (faults shaded)",
            buckets.width_s()
        ),
        (FONT, 20),
    )?;
    // Completions per outcome, function and bucket, in one pass over the operations.
    let mut counts = vec![vec![vec![0f64; buckets.count]; FUNCS.len()]; Status::ALL.len()];
    for op in &run.ops {
        let at = op.complete.unwrap_or(op.invoke);
        if at <= end_ns {
            let f = FUNCS
                .iter()
                .position(|f| *f == op.f)
                .expect("every function is listed");
            counts[op.status as usize][f][buckets.index(at)] += 1.0;
        }
    }
    // The last bucket is cut short by the end of the workload: divide by what it covers.
    let covered = |i: usize| {
        let start = i as u64 * buckets.width_ns;
        (end_ns.saturating_sub(start)).clamp(1, buckets.width_ns) as f64 / 1e9
    };
    let per_second =
        |c: &[f64]| -> Vec<f64> { c.iter().enumerate().map(|(i, n)| n / covered(i)).collect() };
    for (status, area) in statuses.iter().zip(body.split_evenly((statuses.len(), 1))) {
        let by_func = &counts[*status as usize];
        let mut rates: Vec<(Option<Func>, Vec<f64>)> = FUNCS
            .iter()
            .zip(by_func)
            .filter(|(_, c)| c.iter().any(|n| *n > 0.0))
            .map(|(f, c)| (Some(*f), per_second(c)))
            .collect();
        if rates.len() > 1 {
            let all: Vec<f64> = (0..buckets.count)
                .map(|i| by_func.iter().map(|c| c[i]).sum())
                .collect();
            rates.insert(0, (None, per_second(&all)));
        }
        let y_max = rates
            .iter()
            .flat_map(|(_, r)| r.iter().copied())
            .fold(1.0f64, f64::max)
            * 1.15;
        draw_rates(
            &area,
            *status,
            &rates,
            buckets,
            x_max,
            y_max,
            &run.results.faults,
        )?;
    }
    root.present()?;
    Ok(())
}

fn draw_rates(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    status: Status,
    rates: &[(Option<Func>, Vec<f64>)],
    buckets: Buckets,
    x_max: f64,
    y_max: f64,
    faults: &[FaultWindow],
) -> PlotResult {
    let mut chart = time_chart(
        area,
        (
            match status {
                Status::CasMiss => {
                    "outcome: CAS miss (the precondition did not hold; not a failure)".to_owned()
                }
                _ => format!("outcome: {}", status.name()),
            },
            16,
        ),
        x_max,
        (0f64..y_max, (0.0, y_max)),
        ("operations/s", &|v| format!("{v:.0}")),
        faults,
    )?;
    for (f, r) in rates {
        let (color, name) = match f {
            Some(f) => (series_color(*f, status), f.name()),
            None => (RGBColor(40, 40, 40), "all"),
        };
        chart
            .draw_series(LineSeries::new(
                r.iter().enumerate().map(|(i, v)| (buckets.center_s(i), *v)),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
    }
    legend(&mut chart, 12)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cas_that_missed_or_failed_is_drawn_in_another_colour_than_one_that_succeeded() {
        let [ok, miss, fail, info] = Status::ALL.map(|s| series_color(Func::Cas, s));
        assert_ne!(ok, miss);
        assert_ne!(ok, fail);
        assert_ne!(miss, fail);
        assert_eq!(fail, info);
        assert_eq!(series_name(Func::Cas, Status::CasMiss), "cas miss");
        assert_eq!(
            series_color(Func::Read, Status::Fail),
            func_color(Func::Read)
        );
    }
}
