//! Just enough TIFF/EXIF reading to find (and neutralise) the orientation tag.

const ORIENTATION_TAG: u16 = 0x0112;
const TYPE_SHORT: u16 = 3;

#[derive(Clone, Copy)]
pub(crate) enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    pub(crate) fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let s: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(match self {
            ByteOrder::Little => u16::from_le_bytes(s),
            ByteOrder::Big => u16::from_be_bytes(s),
        })
    }

    pub(crate) fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            ByteOrder::Little => u32::from_le_bytes(s),
            ByteOrder::Big => u32::from_be_bytes(s),
        })
    }
}

/// The byte order of a TIFF header ("II*\0" or "MM\0*").
pub(crate) fn tiff_byte_order(tiff: &[u8]) -> Option<ByteOrder> {
    match tiff.get(..4)? {
        [b'I', b'I', 42, 0] => Some(ByteOrder::Little),
        [b'M', b'M', 0, 42] => Some(ByteOrder::Big),
        _ => None,
    }
}

/// One IFD entry: tag, type, count and the offset of its 4-byte value field.
pub(crate) struct IfdEntry {
    pub tag: u16,
    pub kind: u16,
    pub count: u32,
    pub value_at: usize,
}

/// The entries of the IFD at `offset`, or None when it does not fit in `tiff`.
pub(crate) fn ifd_entries(tiff: &[u8], order: ByteOrder, offset: usize) -> Option<Vec<IfdEntry>> {
    let count = order.u16(tiff, offset)? as usize;
    let end = offset.checked_add(2 + count * 12)?;
    if end > tiff.len() {
        return None;
    }
    Some(
        (0..count)
            .map(|i| {
                let at = offset + 2 + i * 12;
                IfdEntry {
                    tag: order.u16(tiff, at).unwrap_or(0),
                    kind: order.u16(tiff, at + 2).unwrap_or(0),
                    count: order.u32(tiff, at + 4).unwrap_or(0),
                    value_at: at + 8,
                }
            })
            .collect(),
    )
}

/// Offset (within `tiff`) of the orientation value, when IFD0 carries a valid one.
fn orientation_field(tiff: &[u8]) -> Option<(usize, ByteOrder)> {
    let order = tiff_byte_order(tiff)?;
    let ifd0 = order.u32(tiff, 4)? as usize;
    ifd_entries(tiff, order, ifd0)?
        .into_iter()
        .find(|e| e.tag == ORIENTATION_TAG && e.kind == TYPE_SHORT && e.count == 1)
        .map(|e| (e.value_at, order))
}

/// The EXIF orientation (1..=8) in a TIFF-structured EXIF block; 1 when absent or out of range.
pub(crate) fn orientation(tiff: &[u8]) -> u8 {
    orientation_field(tiff)
        .and_then(|(at, order)| order.u16(tiff, at))
        .filter(|v| (1..=8).contains(v))
        .map_or(1, |v| v as u8)
}

/// The EXIF block with its orientation reset to 1 (outputs are already upright).
pub(crate) fn with_upright_orientation(tiff: &[u8]) -> Vec<u8> {
    let mut out = tiff.to_vec();
    if let Some((at, order)) = orientation_field(tiff) {
        let one = match order {
            ByteOrder::Little => 1u16.to_le_bytes(),
            ByteOrder::Big => 1u16.to_be_bytes(),
        };
        out[at..at + 2].copy_from_slice(&one);
    }
    out
}

/// A minimal EXIF block (little-endian TIFF, one IFD) holding just an orientation; tests and tools use it.
pub fn orientation_exif(orientation: u8) -> Vec<u8> {
    let mut t = Vec::with_capacity(26);
    t.extend_from_slice(b"II*\0");
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&ORIENTATION_TAG.to_le_bytes());
    t.extend_from_slice(&TYPE_SHORT.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&u16::from(orientation).to_le_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0u32.to_le_bytes());
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_resets_orientation() {
        for o in 1..=8 {
            let exif = orientation_exif(o);
            assert_eq!(orientation(&exif), o);
            assert_eq!(orientation(&with_upright_orientation(&exif)), 1);
        }
        assert_eq!(orientation(b"II*\0\xff\xff\xff\xff"), 1);
        assert_eq!(orientation(&orientation_exif(9)), 1);
        assert_eq!(orientation(b""), 1);
    }
}
