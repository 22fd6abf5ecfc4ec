//! The operator dashboard: how the host serves it (`serving`), and what an operator does with it
//! in real headless Chromium (`browser`, through `driver`).

mod browser;
mod driver;
mod serving;
