//! Herald in a real browser: Debian's Chromium, driven over WebDriver by
//! chromedriver, against the real `herald` binary (`herald serve`,
//! `herald preview --watch`), clicking the buttons a person would click.
//!
//! Behind the switch `HERALD_TEST_BROWSER=chromium` (`.ci/run` installs
//! `chromium` and `chromium-driver` and sets it): unset, each test says it
//! was skipped and passes; set, a missing or broken browser fails it.
//!
//! Every page visited is photographed at 375 and 1200 px into
//! `target/browser-screenshots/NAME-WIDTH.png`, and must not overflow
//! sideways at either width.
//!
//! A test binary of its own, so that the main suite's command line and
//! run time stay as they are, and one Chromium per test at most.

#[path = "browser/admin.rs"]
mod admin;
#[allow(dead_code)]
#[path = "herald/db.rs"]
mod db;
#[allow(dead_code)]
#[path = "browser/driver.rs"]
mod driver;
#[allow(dead_code)]
#[path = "herald/helpers.rs"]
mod helpers;
#[path = "browser/preview.rs"]
mod preview;
#[allow(dead_code)]
#[path = "browser/processes.rs"]
mod processes;
#[path = "browser/public.rs"]
mod public;
