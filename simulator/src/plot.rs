//! SVG figures of a run (`--plot FILE.svg`): a flood's deliveries over
//! virtual time, the distribution of liveness detection times against the
//! configured bound, and the path lengths of chord lookups against
//! ½·log2 N.

use std::error::Error;
use std::path::Path;

use plotters::prelude::*;

use crate::scenario::chord::ChordReport;
use crate::scenario::flood::FloodReport;
use crate::scenario::liveness::LivenessReport;
use crate::show::Figure;

const SIZE: (u32, u32) = (900, 560);

impl Figure for FloodReport {
    fn draw(&self, path: &Path) -> Result<(), Box<dyn Error>> {
        delivery_curve(path, self)
    }
}

impl Figure for LivenessReport {
    fn draw(&self, path: &Path) -> Result<(), Box<dyn Error>> {
        detection_cdf(path, self)
    }
}

impl Figure for ChordReport {
    fn draw(&self, path: &Path) -> Result<(), Box<dyn Error>> {
        hops_histogram(path, self)
    }
}

/// Writes the cumulative deliveries of `report`'s broadcast over virtual
/// time (milliseconds since the broadcast) to the SVG file `path`.
pub fn delivery_curve(path: &Path, report: &FloodReport) -> Result<(), Box<dyn Error>> {
    let mut points = vec![(0.0, 0u32)];
    points.extend(report.curve.iter().copied());
    let x_max = points.last().map_or(1.0, |p| p.0).max(1.0) * 1.05;
    let y_max = f64::from(report.live_nodes.max(2) - 1) * 1.05;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let caption = format!(
        "flood: {} nodes, seed {}: deliveries over virtual time",
        report.nodes, report.seed
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("virtual ms since the broadcast")
        .y_desc("nodes delivered")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    // A step line: the count holds until the next delivery.
    let mut steps = Vec::with_capacity(points.len() * 2);
    for pair in points.windows(2) {
        steps.push((pair[0].0, f64::from(pair[0].1)));
        steps.push((pair[1].0, f64::from(pair[0].1)));
    }
    if let Some(&(t, count)) = points.last() {
        steps.push((t, f64::from(count)));
    }
    chart
        .draw_series(LineSeries::new(steps, BLUE.stroke_width(2)))
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes the delivery curves of several floods of one network (say, the
/// same seed under different network models) to the SVG file `path`: the
/// fraction of live nodes delivered over virtual time, one line per
/// report, labelled with its network model.
pub fn delivery_curves(path: &Path, reports: &[FloodReport]) -> Result<(), Box<dyn Error>> {
    let Some(first) = reports.first() else {
        return Err("no flood to plot".into());
    };
    let x_max = reports
        .iter()
        .map(|r| r.last_delivery_ms)
        .fold(1.0, f64::max)
        * 1.05;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let caption = format!(
        "flood: {} nodes, seed {}, {}-byte payload: share delivered over virtual time",
        first.nodes, first.seed, first.payload_len
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..1.02)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("virtual ms since the broadcast")
        .y_desc("share of live nodes delivered")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .draw()
        .map_err(|e| e.to_string())?;
    let colours = [BLUE, RED, RGBColor(0, 150, 0), MAGENTA, CYAN, BLACK];
    for (k, report) in reports.iter().enumerate() {
        let others = f64::from(report.live_nodes.max(2) - 1);
        let mut steps = vec![(0.0, 0.0)];
        let mut held = 0.0;
        for &(t, count) in &report.curve {
            steps.push((t, held));
            held = f64::from(count) / others;
            steps.push((t, held));
        }
        let colour = colours[k % colours.len()];
        let label = format!(
            "{}: 50% at {:.0} ms, 99% at {:.0} ms",
            report.net, report.p50_ms, report.p99_ms
        );
        chart
            .draw_series(LineSeries::new(steps, colour.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        // Above the middle: between a fast curve's rise on the left and a
        // slow one's on the right.
        .position(SeriesLabelPosition::UpperMiddle)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// The empirical CDF of ascending `sorted` as a step line.
fn cdf_steps(sorted: &[f64]) -> Vec<(f64, f64)> {
    let n = sorted.len() as f64;
    let mut steps = Vec::with_capacity(sorted.len() * 2);
    for (k, &x) in sorted.iter().enumerate() {
        steps.push((x, k as f64 / n));
        steps.push((x, (k + 1) as f64 / n));
    }
    steps
}

/// Writes the CDF of `report`'s detection times (per neighbour, and per
/// crashed node once its last neighbour decided) with the configured bound
/// and the earliest possible detection as vertical lines to the SVG file
/// `path`.
pub fn detection_cdf(path: &Path, report: &LivenessReport) -> Result<(), Box<dyn Error>> {
    let x_max = report
        .bound_ms
        .max(report.detection_ms_max)
        .max(
            report
                .neighbour_detection_times_ms
                .last()
                .copied()
                .unwrap_or(0.0),
        )
        .max(1.0)
        * 1.08;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let caption = format!(
        "liveness: {} nodes, {} crashed, seed {}: detection time CDF",
        report.nodes, report.crashed, report.seed
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..1.05)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("virtual ms after the crash")
        .y_desc("fraction detected")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(
            cdf_steps(&report.neighbour_detection_times_ms),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?
        .label("per neighbour")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            cdf_steps(&report.detection_times_ms),
            GREEN.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?
        .label("per crashed node (all neighbours)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN.stroke_width(2)));
    let bound = report.bound_ms;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(bound, 0.0), (bound, 1.05)],
            RED.stroke_width(2),
        )))
        .map_err(|e| e.to_string())?
        .label(format!("bound {bound} ms (detection_time)"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    let floor = report.floor_ms;
    let grey = RGBColor(128, 128, 128);
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(floor, 0.0), (floor, 1.05)],
            grey.stroke_width(1),
        )))
        .map_err(|e| e.to_string())?
        .label(format!("earliest possible {floor} ms"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes the histogram of `report`'s lookup path lengths (hops), with a
/// vertical line at ½·log2 N (Stoica et al. §6.3), to the SVG file `path`.
pub fn hops_histogram(path: &Path, report: &ChordReport) -> Result<(), Box<dyn Error>> {
    let histogram = &report.hops_histogram;
    let total = histogram.iter().sum::<u64>().max(1) as f64;
    let x_max = (histogram.len() as f64).max(report.expected_hops + 1.0) + 0.5;
    let y_max = histogram.iter().copied().max().unwrap_or(0) as f64 / total * 1.15 + 0.01;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let caption = format!(
        "chord: {} nodes, r = {}, {} lookups, seed {}: path lengths",
        report.nodes, report.r, report.lookups, report.seed
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..x_max, 0.0..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("hops (nodes that answered)")
        .y_desc("fraction of lookups")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(histogram.iter().enumerate().map(|(h, &count)| {
            let h = h as f64;
            Rectangle::new(
                [(h - 0.4, 0.0), (h + 0.4, count as f64 / total)],
                BLUE.mix(0.6).filled(),
            )
        }))
        .map_err(|e| e.to_string())?
        .label(format!("mean {:.2} hops", report.mean_hops))
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], BLUE.mix(0.6).filled()));
    let expected = report.expected_hops;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(expected, 0.0), (expected, y_max)],
            RED.stroke_width(2),
        )))
        .map_err(|e| e.to_string())?
        .label(format!("½·log2 N = {expected:.2}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{chord, flood, liveness};

    fn temp_svg(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("ringmesh-sim-{}-{name}.svg", std::process::id()))
    }

    fn assert_svg(path: &Path) {
        let svg = std::fs::read_to_string(path).expect("written");
        std::fs::remove_file(path).expect("removed");
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.contains("<polyline") || svg.contains("<path"), "{svg}");
    }

    #[test]
    fn a_flood_plot_is_an_svg_file() {
        let report = flood::run(
            &flood::FloodParams {
                nodes: 60,
                ..flood::FloodParams::default()
            },
            |_, _, _| {},
        )
        .expect("runs");
        let path = temp_svg("flood");
        delivery_curve(&path, &report).expect("plots");
        assert_svg(&path);
    }

    #[test]
    fn a_liveness_plot_is_an_svg_file_with_the_bound() {
        let report = liveness::run(
            &liveness::LivenessParams {
                nodes: 40,
                crash: 2,
                ..liveness::LivenessParams::default()
            },
            |_, _, _| {},
        )
        .expect("runs");
        let path = temp_svg("liveness");
        detection_cdf(&path, &report).expect("plots");
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.contains("bound 4025 ms"), "{svg}");
        assert_svg(&path);
    }

    #[test]
    fn a_chord_plot_is_an_svg_file_with_the_expected_path_length() {
        let report = chord::run(
            &chord::ChordParams {
                nodes: 16,
                r: 3,
                lookups: 100,
                ..chord::ChordParams::default()
            },
            |_, _, _| {},
        )
        .expect("runs");
        let path = temp_svg("chord");
        hops_histogram(&path, &report).expect("plots");
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.contains("log2 N = 2.00"), "{svg}");
        assert!(svg.contains("<rect"), "{svg}");
        assert_svg(&path);
    }

    #[test]
    fn cdf_steps_climb_to_one() {
        let steps = cdf_steps(&[1.0, 2.0, 2.0, 5.0]);
        assert_eq!(steps.first(), Some(&(1.0, 0.0)));
        assert_eq!(steps.last(), Some(&(5.0, 1.0)));
        assert!(steps.windows(2).all(|w| w[0].1 <= w[1].1));
    }
}
