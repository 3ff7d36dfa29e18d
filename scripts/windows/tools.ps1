# adjoin: helpers shared by the Windows AD tools host's scripts (stage.ps1, leave.ps1),
# with the RSAT ActiveDirectory module. The service sends this file after common.ps1 and
# before the script. Messages never carry an error's own text (it may quote a secret).
# A command for several instances (an INSTANCES table) runs once per instance: see
# Invoke-AdjoinForEachRow in common.ps1.

Invoke-AdjoinForEachRow
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

# The computer COMPUTER_NAME with its description, or $null when there is none. Exits 13
# when the directory cannot be read.
function Find-AdjoinComputer {
    try {
        return Get-ADComputer -Identity $ComputerName -Properties Description -Server $DcIps[0] -Credential $credential
    } catch [Microsoft.ActiveDirectory.Management.ADIdentityNotFoundException] {
        return $null
    } catch {
        Stop-Adjoin 13 "cannot read computer $ComputerName from $($DcIps[0]) as $JoinUser"
    }
}

# Why the computer found is not this instance's (empty: it is ours). Ours: its
# description is exactly OWNER_STAMP and, when OU_PATH is set, it lies inside OU_PATH.
function Get-AdjoinNotOursReason($Computer) {
    $why = @()
    if ($Computer.Description -cne $OwnerStamp) { $why += "its description is not `"$OwnerStamp`"" }
    if ($OuPath -and -not (ConvertTo-AdjoinComparableDn $Computer.DistinguishedName).EndsWith(',' + (ConvertTo-AdjoinComparableDn $OuPath))) {
        $why += "it is outside $OuPath"
    }
    return ($why -join ', and ')
}

# What was found instead of this instance's object.
function Write-AdjoinNotOurs($Computer, [string] $Why) {
    Write-Output "adjoin: computer $ComputerName ($($Computer.DistinguishedName)) is not the object of $InstanceId`: $Why; left in place"
    Write-Output "adjoin:   found description: $($Computer.Description)"
}

# Deletes the computer with its child objects (e.g. BitLocker recovery information); the
# join user needs the "Delete subtree" right on computer objects that have some.
function Remove-AdjoinComputer($Computer) {
    Remove-ADObject -Identity $Computer.DistinguishedName -Recursive -Server $DcIps[0] -Credential $credential -Confirm:$false
}
