# adjoin: delete a terminated instance's computer object, run on a Windows AD tools host
# (RSAT ActiveDirectory module installed). Parameters arrive as $ADJOIN_<NAME>_B64
# assignments above this script and are decoded as data.
#
# Exit codes: 0 deleted (or already absent), 10 bad parameters, 12 password unreadable,
# 14 delete failed.
# Get-AdjoinParameter, Get-AdjoinCredential and the error preferences come from
# common.ps1, which the service sends ahead of this script.

$Domain = Get-AdjoinParameter 'DOMAIN'
$DcIps = @((Get-AdjoinParameter 'DC_IPS') -split ' ' | Where-Object { $_ })
$JoinUser = Get-AdjoinParameter 'JOIN_USER'
$ComputerName = Get-AdjoinParameter 'COMPUTER_NAME'
$InstanceId = Get-AdjoinParameter 'INSTANCE_ID'

if (-not $Domain -or -not $JoinUser -or $DcIps.Count -eq 0 -or $ComputerName -notmatch '^[A-Za-z0-9-]{1,15}$') {
    Stop-Adjoin 10 'missing or invalid parameter'
}

$credential = Get-AdjoinCredential -Domain $Domain -JoinUser $JoinUser

Import-Module ActiveDirectory
try {
    $computer = Get-ADComputer -Identity $ComputerName -Server $DcIps[0] -Credential $credential
} catch [Microsoft.ActiveDirectory.Management.ADIdentityNotFoundException] {
    Write-Output "adjoin: computer $ComputerName of $InstanceId is not in $Domain; nothing to delete"
    exit 0
}
try {
    Remove-ADComputer -Identity $computer -Server $DcIps[0] -Credential $credential -Confirm:$false
} catch {
    Stop-Adjoin 14 "Remove-ADComputer $ComputerName failed: $($_.Exception.Message)"
}
Write-Output "adjoin: deleted computer $ComputerName of $InstanceId from $Domain"
