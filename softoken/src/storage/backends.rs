//! The storage backends this module offers, chosen by the configdir prefix
//! (`sql:` by default). A new backend is one line here.

pub static BACKENDS: sdb::Registry = sdb::Registry {
    default: &sdb_sqlite::BACKEND,
    others: &[&legacy_dbm::store::BACKEND],
    update_source: Some(&legacy_dbm::store::BACKEND),
};
