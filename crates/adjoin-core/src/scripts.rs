//! The join and leave scripts, bundled into the binary.

/// Joins a Linux instance (bash).
pub const LINUX_JOIN: &str = include_str!("../../../scripts/linux/join.sh");
/// Deletes a computer object from a Linux AD tools host (bash).
pub const LINUX_LEAVE: &str = include_str!("../../../scripts/linux/leave.sh");
/// Joins a Windows instance (PowerShell).
pub const WINDOWS_JOIN: &str = include_str!("../../../scripts/windows/join.ps1");
/// Deletes a computer object from a Windows AD tools host (PowerShell).
pub const WINDOWS_LEAVE: &str = include_str!("../../../scripts/windows/leave.ps1");
