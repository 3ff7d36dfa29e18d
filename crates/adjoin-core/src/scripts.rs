//! The join, stage and leave scripts, bundled into the binary. Each is sent as: the parameter
//! block, then the platform's shared helpers, then the script.

/// Helpers shared by the Linux scripts (bash): options, `param`, `read_password`.
pub const LINUX_COMMON: &str = include_str!("../../../scripts/linux/common.sh");
/// Joins a Linux instance (bash).
pub const LINUX_JOIN: &str = include_str!("../../../scripts/linux/join.sh");
/// Helpers shared by the Linux AD tools host's scripts (bash): Kerberos and LDAP as the
/// join user, finding a computer object and telling whether it is ours.
pub const LINUX_TOOLS: &str = include_str!("../../../scripts/linux/tools.sh");
/// Deletes a computer object from a Linux AD tools host (bash).
pub const LINUX_LEAVE: &str = include_str!("../../../scripts/linux/leave.sh");
/// Creates a staged join's computer account from a Linux AD tools host (bash).
pub const LINUX_STAGE: &str = include_str!("../../../scripts/linux/stage.sh");
/// Helpers shared by the Windows scripts (PowerShell).
pub const WINDOWS_COMMON: &str = include_str!("../../../scripts/windows/common.ps1");
/// Joins a Windows instance (PowerShell).
pub const WINDOWS_JOIN: &str = include_str!("../../../scripts/windows/join.ps1");
/// Helpers shared by the Windows AD tools host's scripts (PowerShell).
pub const WINDOWS_TOOLS: &str = include_str!("../../../scripts/windows/tools.ps1");
/// Deletes a computer object from a Windows AD tools host (PowerShell).
pub const WINDOWS_LEAVE: &str = include_str!("../../../scripts/windows/leave.ps1");
/// Creates a staged join's computer account from a Windows AD tools host (PowerShell).
pub const WINDOWS_STAGE: &str = include_str!("../../../scripts/windows/stage.ps1");
