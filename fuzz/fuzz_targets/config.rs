//! The configuration loader (`ferrotype.json`, also passed to every Lambda through FERROTYPE_CONFIG).
//!
//! Properties: loading never panics; an accepted config re-serialises to a config that loads equal,
//! and profile lookup works for any key.
#![no_main]

use ferrotype_core::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match Config::from_json(text) {
        Ok(config) => config,
        Err(err) => {
            // Errors render (they are what the user sees).
            let _ = err.to_string();
            return;
        }
    };
    let again = Config::from_json(&config.to_json()).expect("a loaded config reloads");
    assert_eq!(again, config);
    for profile in &config.profiles {
        let found = config.profile_for_key(&format!("{}x.jpg", profile.prefix)).expect("a profile covers its prefix");
        assert!(found.prefix.len() >= profile.prefix.len());
        assert_eq!(config.profile(&profile.name), Some(profile));
    }
});
