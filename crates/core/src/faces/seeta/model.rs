//! SeetaFace's frontal detection model (`seeta_fd_frontal_v1.0.bin`, little-endian): a funnel of
//! classifier hierarchies. The first hierarchy's boosted LAB classifiers scan every window; the later
//! hierarchies' SURF-feature MLPs refine the survivors, merging the windows of the hierarchy items named
//! as their sources.

use super::lab::{LabClassifier, LAB_PATTERN_SIDE};
use super::surf::{MlpClassifier, MlpLayer, SURF_FEATURE_COUNT, SURF_FEATURE_DIM};
use super::WINDOW_SIDE;

/// One classifier of the funnel.
#[derive(Debug)]
pub(super) enum Classifier {
    Lab(LabClassifier),
    Mlp(MlpClassifier),
}

/// One item of a hierarchy: classifiers applied in turn to the windows of its sources.
#[derive(Debug)]
pub(super) struct FunnelItem {
    pub stages: Vec<Classifier>,
    /// Indexes into the previous hierarchy's items whose windows this item refines (empty in the
    /// first hierarchy, which scans the image).
    pub sources: Vec<usize>,
}

#[derive(Debug)]
pub(in crate::faces) struct Model {
    pub(super) hierarchies: Vec<Vec<FunnelItem>>,
}

impl Model {
    /// Parses and checks the model, so that detection can index without further checks: every LAB
    /// feature lies inside the window, every MLP's layers chain and every source item exists.
    pub(in crate::faces) fn parse(bytes: &[u8]) -> Result<Model, String> {
        let mut reader = Reader { bytes, at: 0 };
        let hierarchy_count = reader.count("hierarchies", 16)?;
        let mut hierarchies = Vec::with_capacity(hierarchy_count);
        for level in 0..hierarchy_count {
            let item_count = reader.count("hierarchy items", 64)?;
            let mut items = Vec::with_capacity(item_count);
            for _ in 0..item_count {
                let stage_count = reader.count("stages", 64)?;
                let mut stages = Vec::with_capacity(stage_count);
                for _ in 0..stage_count {
                    stages.push(match reader.i32()? {
                        0 => Classifier::Lab(read_lab(&mut reader)?),
                        1 => Classifier::Mlp(read_mlp(&mut reader)?),
                        kind => return Err(format!("unknown classifier kind {kind}")),
                    });
                }
                // The first hierarchy's items say -1: they have no sources.
                let source_count = match reader.i32()? {
                    count @ 1..=64 => count as usize,
                    count if count <= 0 => 0,
                    count => return Err(format!("{count} window sources")),
                };
                let mut sources = Vec::with_capacity(source_count);
                for _ in 0..source_count {
                    let source = reader.i32()?;
                    let previous = if level == 0 {
                        0
                    } else {
                        hierarchies
                            .last()
                            .map_or(0, |items: &Vec<FunnelItem>| items.len())
                    };
                    match usize::try_from(source) {
                        Ok(source) if source < previous => sources.push(source),
                        _ => return Err(format!("window source {source} does not exist")),
                    }
                }
                if stages.is_empty() || (level > 0 && sources.is_empty()) {
                    return Err("a hierarchy item without stages or sources".to_string());
                }
                items.push(FunnelItem { stages, sources });
            }
            hierarchies.push(items);
        }
        if reader.at != bytes.len() {
            return Err(format!("{} bytes after the model", bytes.len() - reader.at));
        }
        let shape_is_supported = hierarchies.first().is_some_and(|first| {
            first.iter().all(|item| {
                matches!(item.stages.as_slice(), [Classifier::Lab(_)]) && item.sources.is_empty()
            })
        }) && hierarchies[1..].iter().flatten().all(|item| {
            item.stages
                .iter()
                .all(|stage| matches!(stage, Classifier::Mlp(_)))
        });
        if !shape_is_supported {
            return Err(
                "the first hierarchy must be single LAB classifiers and the rest MLPs".to_string(),
            );
        }
        Ok(Model { hierarchies })
    }
}

fn read_lab(reader: &mut Reader) -> Result<LabClassifier, String> {
    let count = reader.count("LAB features", 10_000)?;
    let bins = reader.count("LAB bins", 256)?;
    if bins != 255 {
        return Err(format!(
            "LAB classifiers need 256 weights, not {}",
            bins + 1
        ));
    }
    let mut offsets = Vec::with_capacity(count);
    for _ in 0..count {
        let (x, y) = (reader.i32()?, reader.i32()?);
        let fits = |at: i32| u32::try_from(at).is_ok_and(|at| at + LAB_PATTERN_SIDE <= WINDOW_SIDE);
        if !fits(x) || !fits(y) {
            return Err(format!("LAB feature ({x}, {y}) outside the window"));
        }
        offsets.push((x as u32, y as u32));
    }
    let thresholds = reader.f32s(count)?;
    let weights = reader.f32s(count * 256)?;
    Ok(LabClassifier::new(offsets, thresholds, weights))
}

fn read_mlp(reader: &mut Reader) -> Result<MlpClassifier, String> {
    let layer_count = reader.count("MLP layers", 16)?;
    let feature_count = reader.count("MLP features", SURF_FEATURE_COUNT)?;
    let mut feature_ids = Vec::with_capacity(feature_count);
    for _ in 0..feature_count {
        // 1-based in the file.
        match usize::try_from(reader.i32()?) {
            Ok(id) if (1..=SURF_FEATURE_COUNT).contains(&id) => feature_ids.push(id - 1),
            _ => return Err("an MLP feature id outside the feature pool".to_string()),
        }
    }
    let threshold = reader.f32()?;
    let mut input = reader.count("MLP input", 1 << 16)?;
    if input != feature_count * SURF_FEATURE_DIM {
        return Err(format!(
            "an MLP input of {input} for {feature_count} features"
        ));
    }
    let mut layers = Vec::with_capacity(layer_count.saturating_sub(1));
    for _ in 1..layer_count {
        let output = reader.count("MLP layer", 1 << 12)?;
        let weights = reader.f32s(input * output)?;
        let biases = reader.f32s(output)?;
        layers.push(MlpLayer::new(input, weights, biases));
        input = output;
    }
    // The score and the window's correction (x, y, size) come out of the last layer.
    if layers.is_empty() || input != 4 {
        return Err("an MLP without its four outputs".to_string());
    }
    Ok(MlpClassifier::new(feature_ids, threshold, layers))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn word(&mut self) -> Result<[u8; 4], String> {
        let word = self
            .bytes
            .get(self.at..self.at + 4)
            .ok_or("the model ends early")?;
        self.at += 4;
        Ok(word.try_into().expect("four bytes"))
    }

    fn i32(&mut self) -> Result<i32, String> {
        self.word().map(i32::from_le_bytes)
    }

    fn f32(&mut self) -> Result<f32, String> {
        self.word().map(f32::from_le_bytes)
    }

    fn f32s(&mut self, count: usize) -> Result<Vec<f32>, String> {
        if count > (self.bytes.len() - self.at) / 4 {
            return Err("the model ends early".to_string());
        }
        (0..count).map(|_| self.f32()).collect()
    }

    /// A count in `0..=max` (the bound keeps a damaged file from asking for huge allocations).
    fn count(&mut self, what: &str, max: usize) -> Result<usize, String> {
        let value = self.i32()?;
        usize::try_from(value)
            .ok()
            .filter(|count| *count <= max)
            .ok_or_else(|| format!("{value} {what}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &[u8] = include_bytes!("../../../models/seeta_fd_frontal_v1.0.bin");

    #[test]
    fn the_shipped_model_is_three_lab_cascades_then_mlps() {
        let model = Model::parse(SHIPPED).expect("the shipped model parses");
        let shape: Vec<Vec<(usize, Vec<usize>)>> = model
            .hierarchies
            .iter()
            .map(|items| {
                items
                    .iter()
                    .map(|item| (item.stages.len(), item.sources.clone()))
                    .collect()
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                vec![(1, vec![]), (1, vec![]), (1, vec![])],
                vec![(2, vec![0, 1, 2])],
                vec![(1, vec![0])],
            ]
        );
    }

    #[test]
    fn a_damaged_model_is_an_error_not_a_panic() {
        // Cut anywhere (a few hundred places, the first words included) or extended.
        for length in (0..64).chain((64..SHIPPED.len()).step_by(3001)) {
            assert!(Model::parse(&SHIPPED[..length]).is_err(), "cut at {length}");
        }
        let mut extended = SHIPPED.to_vec();
        extended.extend_from_slice(&[0; 4]);
        assert!(Model::parse(&extended).is_err());
        // Absurd counts are refused before anything is allocated for them.
        for header in [[-5i32, 0], [1, i32::MAX], [1, 1]] {
            let bytes: Vec<u8> = header
                .iter()
                .chain(&[i32::MAX; 4])
                .flat_map(|word| word.to_le_bytes())
                .collect();
            assert!(Model::parse(&bytes).is_err(), "{header:?}");
        }
    }
}
