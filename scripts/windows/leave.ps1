# adjoin: delete a terminated instance's computer object, run on a Windows AD tools host
# (RSAT ActiveDirectory module installed). Parameters arrive as $ADJOIN_<NAME>_B64
# assignments above this script and are decoded as data.
#
# Only the instance's own object is deleted: the computer named COMPUTER_NAME whose
# description is exactly OWNER_STAMP ("adjoin <account> <region> <instance-id>", written
# at the join) and, when OU_PATH is set, which is inside OU_PATH. A same-named object
# that is not ours is left in place and reported (exit 15). The object is deleted with
# its child objects (e.g. BitLocker recovery information): Remove-ADObject -Recursive
# (the join user needs the "Delete subtree" right on computer objects that have some).
#
# Exit codes: 0 deleted (or already absent), 1 unexpected error (its message withheld),
# 10 bad parameters, 12 password unreadable, 13 domain controller unreachable or the
# join user cannot authenticate, 14 delete failed, 15 not ours: a computer of that name
# exists but lacks the owner stamp or is outside the OU (left in place).
# Messages never carry an error's own text (it may quote the secret).
# Read-AdjoinCommonParameters, Get-AdjoinParameter, Get-AdjoinCredential and the error
# preferences come from common.ps1, which the service sends ahead of this script.

Read-AdjoinCommonParameters
$InstanceId = Get-AdjoinParameter 'INSTANCE_ID'

if (-not $Domain -or -not $JoinUser -or $DcIps.Count -eq 0 -or $ComputerName -notmatch '^[A-Za-z0-9-]{1,15}$' -or
    -not $OwnerStamp) {
    Stop-Adjoin 10 'missing or invalid parameter'
}

# A DN in comparable form: lower case, no blanks around ',' and '='.
function ConvertTo-AdjoinComparableDn([string] $Dn) {
    return ($Dn -replace '\s*([,=])\s*', '$1').ToLowerInvariant()
}

$credential = Get-AdjoinCredential -Domain $Domain -JoinUser $JoinUser

Import-Module ActiveDirectory
try {
    $computer = Get-ADComputer -Identity $ComputerName -Properties Description -Server $DcIps[0] -Credential $credential
} catch [Microsoft.ActiveDirectory.Management.ADIdentityNotFoundException] {
    Write-Output "adjoin: computer $ComputerName of $InstanceId is not in $Domain; nothing to delete"
    exit 0
} catch {
    Stop-Adjoin 13 "cannot read computer $ComputerName from $($DcIps[0]) as $JoinUser"
}

$why = @()
if ($computer.Description -cne $OwnerStamp) { $why += "its description is not `"$OwnerStamp`"" }
if ($OuPath -and -not (ConvertTo-AdjoinComparableDn $computer.DistinguishedName).EndsWith(',' + (ConvertTo-AdjoinComparableDn $OuPath))) {
    $why += "it is outside $OuPath"
}
if ($why.Count -gt 0) {
    Write-Output "adjoin: computer $ComputerName ($($computer.DistinguishedName)) is not the object of $InstanceId`: $($why -join ', and '); left in place"
    Write-Output "adjoin:   found description: $($computer.Description)"
    Stop-Adjoin 15 "not ours: computer $ComputerName was not deleted"
}

try {
    Remove-ADObject -Identity $computer.DistinguishedName -Recursive -Server $DcIps[0] -Credential $credential -Confirm:$false
} catch {
    Stop-Adjoin 14 "Remove-ADObject -Recursive of $($computer.DistinguishedName) failed"
}
Write-Output "adjoin: deleted computer $ComputerName ($($computer.DistinguishedName)) of $InstanceId from $Domain"
