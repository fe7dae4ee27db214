//! Small helpers for what the CLI and its reports say.

/// "1 image", "3 images" (every noun we count takes an "s").
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_in_number() {
        assert_eq!(count(0, "image"), "0 images");
        assert_eq!(count(1, "image"), "1 image");
        assert_eq!(count(2, "file"), "2 files");
    }
}
