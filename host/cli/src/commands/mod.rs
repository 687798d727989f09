//! One module per command: its arguments (`Args`) and what it does (`exec`).

pub mod batch;
pub mod call;
pub mod component;
pub mod doctor;
pub mod dossier;
pub mod download;
pub mod endpoints;
pub mod habilitation;
pub mod sandbox;
pub mod serve;
pub mod status;
