//! The README renders as Markdown from top to bottom: every fenced code block is closed. A closing fence
//! is a line of only backticks (CommonMark); "``` The executor…" is not one, and such a line once turned
//! the second half of the README into a single code block.

#[test]
fn every_code_fence_of_the_readme_is_closed() {
    let readme = include_str!("../README.md");
    let mut open: Option<(usize, usize)> = None;
    for (index, line) in readme.lines().enumerate() {
        let trimmed = line.trim_start();
        let ticks = trimmed.chars().take_while(|&c| c == '`').count();
        if ticks < 3 || line.len() - trimmed.len() > 3 {
            continue;
        }
        match open {
            None => open = Some((index + 1, ticks)),
            Some((_, opened)) if ticks >= opened && trimmed[ticks..].trim().is_empty() => {
                open = None
            }
            Some(_) => {}
        }
    }
    if let Some((line, _)) = open {
        panic!("README.md: the code fence opened at line {line} is never closed");
    }
}
