//! What an instance has whatever elects it, shared by every election kind (`crate::election`): the
//! operator's overrides that survive a restart ([`overrides`]). Rooms below the daemon and the
//! elections: nothing here imports either.

pub mod overrides;
