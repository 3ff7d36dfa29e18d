# adjoin: stage a join, run on a Windows AD tools host (RSAT ActiveDirectory module):
# create the instance's computer account with a one-time password, so that the
# instance joins with that password alone and never needs the join user's.
#
# The one-time password is in the SecureString parameter OTP_SSM_PARAMETER (Region
# OTP_REGION), written by the service for this attempt: read with the tools host's own
# role, the parameter deleted at once, the password kept as a SecureString.
#
# The computer account COMPUTER_NAME is created in OU_PATH with OWNER_STAMP as its
# description and added to each COMPUTER_GROUPS group. A same-named object that is not
# ours is left alone (exit 19); one of ours (an earlier attempt, or an instance that
# joined before) is deleted and created afresh, so no earlier password binds it.
#
# Exit codes: 0 staged, 1 unexpected error (its message withheld), 10 bad parameters,
# 12 a password unreadable, 13 the directory cannot be read, 14 the account could not
# be created, 16 created but not added to a computerGroups group, 19 a computer of that
# name exists and is not this instance's: not taken over.
# Helpers come from common.ps1 and tools.ps1, which the service sends ahead of this script.

$ComputerGroups = @((Get-AdjoinParameter 'COMPUTER_GROUPS') -split "`n" | Where-Object { $_ })
$oneTimePassword = Read-AdjoinOneTimePassword

$computer = Find-AdjoinComputer
if ($computer) {
    $why = Get-AdjoinNotOursReason $computer
    if ($why) {
        Write-AdjoinNotOurs $computer $why
        Stop-Adjoin 19 "computer $ComputerName exists and is not this instance's; not taken over"
    }
    try {
        Remove-AdjoinComputer $computer
    } catch {
        Stop-Adjoin 14 "cannot replace the earlier account $($computer.DistinguishedName)"
    }
    Write-Output "adjoin: replaced the earlier computer account $ComputerName of $InstanceId"
}

$newArgs = @{
    Name = $ComputerName; SamAccountName = "$ComputerName`$"; Description = $OwnerStamp
    AccountPassword = $oneTimePassword; Enabled = $true; Server = $DcIps[0]; Credential = $credential
}
if ($OuPath) { $newArgs.Path = $OuPath }
try {
    New-ADComputer @newArgs
} catch {
    Stop-Adjoin 14 "cannot create computer account $ComputerName"
}
Remove-Variable -Name oneTimePassword, newArgs

$failed = @()
foreach ($group in $ComputerGroups) {
    try {
        Add-ADGroupMember -Identity $group -Members "$ComputerName`$" -Server $DcIps[0] -Credential $credential
    } catch {
        $failed += $group
    }
}
if ($failed.Count -gt 0) { Stop-Adjoin 16 "staged, but not added to group(s): $($failed -join ', ')" }
Write-Output "adjoin: staged computer account $ComputerName of $InstanceId in $Domain"
