//! Integration tests: real servers on ephemeral ports, real HTTP, both databases.
//! One binary with a module per area (each file under tests/ would be its own link).

mod kit;

mod cli;
mod clients;
mod discovery;
mod gateway;
mod gateway_jwt;
mod hostile;
mod introspection;
mod keys;
mod orgfile;
mod people;
mod token;
