//! The CEL environment caveats are evaluated in: the `cel` crate's standard library plus what
//! SpiceDB's caveat environment adds — the `ipaddress` type with `in_cidr`, and
//! `map.isSubtreeOf(map)` — built once and shared.

use std::any::Any;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use cel::common::types::{CelBool, CelMap, CelString, MAP_TYPE, STRING_TYPE, Type};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

/// The CEL type of `ipaddress` values.
static IP_ADDRESS_TYPE: Type = Type::new_unspecified_type("ipaddress");

/// Deepest nesting of maps `isSubtreeOf` compares (context values are bounded shallower).
const MAX_SUBTREE_DEPTH: usize = 64;

/// An IP address, as SpiceDB's `ipaddress` (an IPv4-mapped IPv6 address is its IPv4 address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IpAddress(pub(crate) IpAddr);

impl IpAddress {
    /// Parses an address as Go's `netip.ParseAddr` followed by `Unmap`.
    pub(crate) fn parse(text: &str) -> Option<IpAddress> {
        let ip: IpAddr = text.parse().ok()?;
        Some(IpAddress(unmap(ip)))
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Val for IpAddress {
    fn get_type(&self) -> &Type {
        &IP_ADDRESS_TYPE
    }

    fn cel_type() -> &'static Type {
        &IP_ADDRESS_TYPE
    }

    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<IpAddress>().is_some_and(|o| o == self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

impl StaticVal for IpAddress {}

/// The shared environment, or why it could not be built.
static ENV: LazyLock<Result<Arc<Env>, DeclarationError>> = LazyLock::new(build);

/// The environment caveats evaluate in.
pub(super) fn env() -> Result<Arc<Env>, String> {
    match &*ENV {
        Ok(env) => Ok(Arc::clone(env)),
        Err(e) => Err(format!("the CEL environment could not be built: {e}")),
    }
}

fn build() -> Result<Arc<Env>, DeclarationError> {
    let mut env = Env::stdlib();
    env.add_type(Type::new_unspecified_type("ipaddress"))?;
    env.add_member_overload(
        "in_cidr",
        "ipaddress_in_cidr_string",
        Type::new_unspecified_type("ipaddress"),
        vec![STRING_TYPE],
        in_cidr,
    )?;
    env.add_member_overload(
        "isSubtreeOf",
        "map_is_subtree_of_map",
        MAP_TYPE,
        vec![MAP_TYPE],
        is_subtree_of,
    )?;
    Ok(Arc::new(env))
}

/// `ip.in_cidr(cidr)`: whether the address is in the network, as Go's
/// `netip.ParsePrefix(cidr).Contains(ip)`; an invalid CIDR string is an error.
fn in_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (Some(ip), Some(cidr)) = (args.first(), args.get(1)) else {
        return Err(ExecutionError::invalid_argument_count(2, args.len()));
    };
    let ip = ip
        .downcast_ref::<IpAddress>()
        .ok_or_else(|| ExecutionError::function_error("in_cidr", "expected an ipaddress"))?;
    let cidr = cidr
        .downcast_ref::<CelString>()
        .ok_or_else(|| ExecutionError::function_error("in_cidr", "expected a CIDR string"))?
        .inner();
    let (network, bits) = parse_prefix(cidr).ok_or_else(|| {
        ExecutionError::function_error("in_cidr", format!("invalid CIDR string: `{cidr}`"))
    })?;
    Ok(CowVal::owned(CelBool::from(contains(network, bits, ip.0))))
}

/// `addr/bits` as Go's `netip.ParsePrefix`: no zone, bits in range, no sign or leading zero.
pub(crate) fn parse_prefix(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = text.split_once('/')?;
    let ip: IpAddr = addr.parse().ok()?;
    if bits.is_empty()
        || !bits.bytes().all(|b| b.is_ascii_digit())
        || (bits.len() > 1 && bits.starts_with('0'))
    {
        return None;
    }
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

/// Whether `ip` is in `network/bits` (an IPv4 address is never in an IPv6 network).
pub(crate) fn contains(network: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (network, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// `a.isSubtreeOf(b)`: every key of `a` is in `b` with an equal value, maps compared
/// recursively (SpiceDB's `subtree`).
fn is_subtree_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (Some(a), Some(b)) = (args.first(), args.get(1)) else {
        return Err(ExecutionError::invalid_argument_count(2, args.len()));
    };
    let result = subtree(a.as_ref(), b.as_ref(), 0)?;
    Ok(CowVal::owned(CelBool::from(result)))
}

fn subtree(a: &dyn Val, b: &dyn Val, depth: usize) -> Result<bool, ExecutionError> {
    if depth > MAX_SUBTREE_DEPTH {
        return Err(ExecutionError::function_error(
            "isSubtreeOf",
            "maps nested too deeply",
        ));
    }
    let (Some(a), Some(b)) = (a.downcast_ref::<CelMap>(), b.downcast_ref::<CelMap>()) else {
        return Err(ExecutionError::function_error(
            "isSubtreeOf",
            "expected two maps",
        ));
    };
    for (key, value) in a.inner() {
        let Some(other) = b.inner().get(key) else {
            return Ok(false);
        };
        let holds = if value.downcast_ref::<CelMap>().is_some() {
            other.downcast_ref::<CelMap>().is_some()
                && subtree(value.as_ref(), other.as_ref(), depth + 1)?
        } else {
            value.equals(other.as_ref())
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}
