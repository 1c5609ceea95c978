//! `vmac` and `vmac_interface` of an `[[instance]]`: the virtual-MAC switch and the name of the
//! macvlan it creates (a Linux interface name, not the instance's own interface, only with `vmac`).

use super::is_valid_ifname;
use crate::config::error::Cx;
use crate::config::raw::RawInstance;

/// `(vmac, vmac_interface)`; clears `ok` on a bad name or a name without `vmac = true`.
pub(super) fn validate_vmac(
    cx: &mut Cx<'_>,
    raw: &RawInstance,
    interface: Option<&String>,
    ok: &mut bool,
) -> (bool, Option<String>) {
    let vmac = raw.vmac.as_ref().is_some_and(|v| *v.get_ref());
    let Some(name) = &raw.vmac_interface else {
        return (vmac, None);
    };
    let ifname = name.get_ref();
    if !vmac {
        cx.at(
            name.span(),
            format!(
                "vmac_interface = \"{ifname}\" is set but vmac is not on, so it would do nothing"
            ),
            "add vmac = true to this instance, or remove vmac_interface",
        );
        *ok = false;
    } else if !is_valid_ifname(ifname) {
        cx.at(
            name.span(),
            format!("vmac_interface \"{ifname}\" is not a valid Linux interface name"),
            "an interface name is 1-15 characters without '/', ':' or spaces, e.g. \"vrrp.51\"",
        );
        *ok = false;
    } else if Some(ifname) == interface {
        cx.at(
            name.span(),
            format!("vmac_interface is {ifname}, the instance's own interface"),
            "the virtual-MAC interface is a new macvlan floatip creates on top of `interface`; give it its own name, e.g. \"vrrp.51\"",
        );
        *ok = false;
    }
    (vmac, Some(ifname.clone()))
}
