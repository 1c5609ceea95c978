//! floatip configs for the lab tests: one `[[instance]]` model and the text of a whole file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use floatip_lab::{Host, Lab};

use super::{VIP4, VIP6};

/// One `[[instance]]` of a floatip config.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The instance's name ("files").
    name: String,
    /// The interface it runs on ("eth0").
    pub interface: String,
    pub vrid: u8,
    priority: u8,
    /// VRRP version, 2 or 3 (0: not in the file, floatip's default).
    version: u8,
    /// "100ms", "1s".
    advert_interval: String,
    preempt: bool,
    /// The VIPs with their prefix length ("192.0.2.97/24").
    pub addresses: Vec<String>,
    /// Unicast peers (empty: multicast).
    unicast_peers: Vec<String>,
    /// Extra lines appended verbatim inside the `[[instance]]` table (keys, then sub-tables such
    /// as `[[instance.check]]` or `[instance.notify]`).
    pub extra: String,
}

impl Instance {
    /// The file server `files`: VRRPv3 for 192.0.2.97/24 on eth0, VRID 51, adverts every 100 ms.
    pub fn v4(priority: u8) -> Instance {
        Instance {
            name: "files".into(),
            interface: "eth0".into(),
            vrid: 51,
            priority,
            version: 3,
            advert_interval: "100ms".into(),
            preempt: true,
            addresses: vec![format!("{VIP4}/24")],
            unicast_peers: Vec::new(),
            extra: String::new(),
        }
    }

    /// `files6`: VRRPv3 for 2001:db8::97/64 on eth0, VRID 52, adverts every 100 ms.
    pub fn v6(priority: u8) -> Instance {
        Instance {
            name: "files6".into(),
            vrid: 52,
            addresses: vec![format!("{VIP6}/64")],
            ..Instance::v4(priority)
        }
    }

    /// Another instance like [`Instance::v4`]: `name`, `vrid`, one address ("192.0.2.98/24").
    pub fn named(name: &str, vrid: u8, priority: u8, address: &str) -> Instance {
        Instance {
            name: name.into(),
            vrid,
            addresses: vec![address.into()],
            ..Instance::v4(priority)
        }
    }

    pub fn interval(mut self, d: &str) -> Instance {
        self.advert_interval = d.into();
        self
    }

    pub fn version(mut self, v: u8) -> Instance {
        self.version = v;
        self
    }

    pub fn preempt(mut self, p: bool) -> Instance {
        self.preempt = p;
        self
    }

    pub fn unicast(mut self, peers: &[&str]) -> Instance {
        self.unicast_peers = peers.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn interface(mut self, name: &str) -> Instance {
        self.interface = name.into();
        self
    }

    pub fn extra(mut self, text: &str) -> Instance {
        self.extra = text.into();
        self
    }

    /// Neither `version` nor `advert_interval` in the file: floatip's defaults.
    pub fn defaults(mut self) -> Instance {
        self.version = 0;
        self.advert_interval = String::new();
        self
    }

    fn write_to(&self, s: &mut String) {
        let list = |v: &[String]| {
            v.iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = write!(
            s,
            "\n[[instance]]\nname = \"{}\"\ninterface = \"{}\"\nvrid = {}\npriority = {}\n",
            self.name, self.interface, self.vrid, self.priority,
        );
        if self.version != 0 {
            let _ = writeln!(s, "version = {}", self.version);
        }
        if !self.advert_interval.is_empty() {
            let _ = writeln!(s, "advert_interval = \"{}\"", self.advert_interval);
        }
        let _ = write!(
            s,
            "preempt = {}\naddresses = [{}]\n",
            self.preempt,
            list(&self.addresses),
        );
        if !self.unicast_peers.is_empty() {
            let _ = writeln!(s, "unicast_peers = [{}]", list(&self.unicast_peers));
        }
        s.push_str(&self.extra);
    }
}

/// The text of a floatip config: `[daemon]` with `state_dir` (always inside a lab's or a test's
/// temp dir, never /var/lib) and the `daemon_keys` lines, then the instances.
pub fn config_text(state_dir: &Path, daemon_keys: &str, instances: &[Instance]) -> String {
    let mut s = format!(
        "[daemon]\nstate_dir = \"{}\"\n{daemon_keys}",
        state_dir.display()
    );
    for i in instances {
        i.write_to(&mut s);
    }
    s
}

/// [`config_text`] for `host` in `lab`, with a fresh state dir in the lab's temp dir.
pub fn floatip_config(lab: &Lab, host: &Host, instances: &[Instance]) -> String {
    config_text(&lab.path(&format!("{}-state", host.name)), "", instances)
}

/// Writes `text` to `<lab dir>/<stem>` and returns the path.
pub fn write_file(lab: &Lab, stem: &str, text: &str) -> PathBuf {
    let path = lab.path(stem);
    write_path(&path, text);
    path
}

/// Writes `text` to `path` (a track file, a key file), failing the test when it cannot.
pub fn write_path(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
