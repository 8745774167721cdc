//! Fault injection for the upgrade tests (cargo feature `fault-injection`,
//! never in release builds): `MOGOTHROW77_UPGRADE_FAULT=kill-after:STEP`
//! makes the tool SIGKILL itself right after STEP is journaled done, as an
//! operator's `kill -9` or a power cut would.

use crate::journal::Step;

#[cfg(feature = "fault-injection")]
static FAULT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Reads the fault and takes it out of the environment: the server binary
/// the tool runs reads every `MOGOTHROW77_*` variable as configuration.
#[cfg(feature = "fault-injection")]
pub fn arm() {
    let fault = std::env::var("MOGOTHROW77_UPGRADE_FAULT").ok();
    std::env::remove_var("MOGOTHROW77_UPGRADE_FAULT");
    let _ = FAULT.set(fault);
}

#[cfg(not(feature = "fault-injection"))]
pub fn arm() {}

#[cfg(feature = "fault-injection")]
pub fn after(step: Step) {
    let Some(Some(spec)) = FAULT.get() else {
        return;
    };
    if *spec == format!("kill-after:{}", step.name()) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
pub fn after(_step: Step) {}
