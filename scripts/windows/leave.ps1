# adjoin: delete a terminated instance's computer object, run on a Windows AD tools host
# (RSAT ActiveDirectory module installed). Parameters arrive as $ADJOIN_<NAME>_B64
# assignments above this script and are decoded as data.
#
# Only the instance's own object is deleted: the computer named COMPUTER_NAME whose
# description is exactly OWNER_STAMP ("adjoin <account> <region> <instance-id>", written
# at the join or the staging) and, when OU_PATH is set, which is inside OU_PATH. A
# same-named object that is not ours is left in place and reported (exit 15). The object
# is deleted with its child objects (Remove-ADObject -Recursive).
#
# Exit codes: 0 deleted (or already absent), 1 unexpected error (its message withheld),
# 10 bad parameters, 12 password unreadable, 13 domain controller unreachable or the
# join user cannot authenticate, 14 delete failed, 15 not ours: a computer of that name
# exists but lacks the owner stamp or is outside the OU (left in place).
# Read-AdjoinCommonParameters, Get-AdjoinParameter, Get-AdjoinCredential and the error
# preferences come from common.ps1; Find-AdjoinComputer, Get-AdjoinNotOursReason and
# Remove-AdjoinComputer from tools.ps1. The service sends both ahead of this script.

$computer = Find-AdjoinComputer
if (-not $computer) {
    Write-Output "adjoin: computer $ComputerName of $InstanceId is not in $Domain; nothing to delete"
    exit 0
}
$why = Get-AdjoinNotOursReason $computer
if ($why) {
    Write-AdjoinNotOurs $computer $why
    Stop-Adjoin 15 "not ours: computer $ComputerName was not deleted"
}
try {
    Remove-AdjoinComputer $computer
} catch {
    Stop-Adjoin 14 "Remove-ADObject -Recursive of $($computer.DistinguishedName) failed"
}
Write-Output "adjoin: deleted computer $ComputerName ($($computer.DistinguishedName)) of $InstanceId from $Domain"
