# adjoin: join this Windows instance to Active Directory.
#
# Run by SSM Run Command (AWS-RunPowerShellScript). The service places the parameters
# above this script as $ADJOIN_<NAME>_B64 = '<base64>' assignments; they are decoded
# here as data. No password is ever a parameter.
#
# JOIN_MODE staged (the default): the AD tools host has created the computer account (in
# its OU, with its groups and owner stamp) with a one-time password, which the service
# put in the SecureString parameter OTP_SSM_PARAMETER that only this instance may read.
# The instance takes the computer name (a rename and a reboot when it differs), reads
# the password with its own role, deletes the parameter, and joins with it
# (Add-Computer -Options UnsecuredJoin,PasswordPass: the one-time password is the
# machine password). On the run after the join's reboot it resets its machine password
# (Reset-ComputerMachinePassword), so the one-time password binds nothing any more.
#
# JOIN_MODE sharedPassword: the join user's password is read with the instance's own role
# and kept as a SecureString; the instance creates the computer account itself.
#
# Exit codes: 0 already joined, 3010 joined, or left a domain it was joined to under
# another name (SSM Agent reboots the instance and runs the script again), 1 unexpected
# error (its message withheld), 10 bad parameters, 12 password unreadable, 14 join
# failed, 15 Remote Desktop grant failed, 16 joined but not added to a computerGroups
# group, 17 the Remote Desktop Session Host role could not be installed, 18 joined but
# the owner stamp could not be written to the computer object, 13 the directory could
# not be searched, 19 a computer object of this name exists and is not this instance's
# (made by someone else): not taken over, 20 the machine password could not be reset
# after a staged join.
#
# Ownership: after the join the computer object's description is set, as the join user,
# to OWNER_STAMP ("adjoin <account> <region> <instance-id>"); the leave deletes only an
# object that carries it. "Already joined" means a member of Domain under COMPUTER_NAME:
# an instance made from an image of another joined machine carries that machine's name
# and membership; it leaves the domain locally (its object in the directory untouched),
# reboots, and joins as itself on the next run.
# Messages never carry an error's own text (it may quote the secret).
# Read-AdjoinCommonParameters, Get-AdjoinParameter, Get-AdjoinCredential and the error
# preferences come from common.ps1, which the service sends ahead of this script.

Use-AdjoinOwnValues
Read-AdjoinCommonParameters
$AllowedGroup = Get-AdjoinParameter 'ALLOWED_GROUP'
$ComputerGroups = @((Get-AdjoinParameter 'COMPUTER_GROUPS') -split "`n" | Where-Object { $_ })
$InstallRds = (Get-AdjoinParameter 'INSTALL_RDS_SESSION_HOST') -eq 'true'
$JoinMode = Get-AdjoinParameter 'JOIN_MODE'
if (-not $JoinMode) { $JoinMode = 'staged' }
# Left by a staged join until its first run after the reboot resets the machine password.
$RotateMarker = Join-Path $env:ProgramData 'adjoin\reset-machine-password'

if (-not $Domain -or -not $ComputerName -or $DcIps.Count -eq 0 -or -not $OwnerStamp) {
    Stop-Adjoin 10 'missing parameter (domain, DC IPs, computer name and owner stamp are required)'
}
if ($JoinMode -ceq 'sharedPassword') {
    if (-not $JoinUser) { Stop-Adjoin 10 'missing parameter (a shared-password join needs the join user)' }
} elseif ($JoinMode -cne 'staged') {
    Stop-Adjoin 10 'unknown join mode'
}

# Resolve the domain through its own DCs, keeping the VPC resolver after them.
function Set-AdjoinDnsServers {
    $adapter = Get-NetAdapter | Where-Object { $_.Status -eq 'Up' } | Select-Object -First 1
    $current = (Get-DnsClientServerAddress -InterfaceIndex $adapter.ifIndex -AddressFamily IPv4).ServerAddresses
    Set-DnsClientServerAddress -InterfaceIndex $adapter.ifIndex -ServerAddresses (@($DcIps) + @($current | Where-Object { $DcIps -notcontains $_ }))
}

# After a staged join's reboot: the machine sets a password of its own, so the one-time
# password that joined it binds nothing any more.
function Reset-AdjoinMachinePassword {
    if (-not (Test-Path -LiteralPath $RotateMarker)) { return }
    try {
        Reset-ComputerMachinePassword -Server $DcIps[0]
    } catch {
        Stop-Adjoin 20 'joined, but the machine password could not be reset after the one-time password'
    }
    Remove-Item -LiteralPath $RotateMarker -Force
    Write-Output 'adjoin: machine password reset; the one-time password no longer binds'
}

# A staged join: the account exists, made by the AD tools host; this instance takes its
# name and joins with the one-time password alone.
function Join-AdjoinStaged {
    if ($env:COMPUTERNAME -ine $ComputerName) {
        try {
            Rename-Computer -NewName $ComputerName -Force
        } catch {
            Stop-Adjoin 14 "cannot rename this computer to $ComputerName"
        }
        Write-Output "adjoin: renamed to $ComputerName; rebooting to join $Domain"
        exit 3010
    }
    Set-AdjoinDnsServers
    $oneTimePassword = Read-AdjoinOneTimePassword
    # PasswordPass: the credential's password is the machine password, its user name null.
    $joinCredential = New-Object System.Management.Automation.PSCredential -ArgumentList ([pscustomobject]@{
        UserName = $null
        Password = $oneTimePassword
    })
    try {
        Add-Computer -DomainName $Domain -Server $DcIps[0] -Options UnsecuredJoin, PasswordPass -Credential $joinCredential -Force
    } catch {
        Stop-Adjoin 14 "Add-Computer with the one-time password of the staged account $ComputerName failed"
    }
    Remove-Variable -Name oneTimePassword, joinCredential
    New-Item -ItemType File -Path $RotateMarker -Force | Out-Null
    Install-AdjoinRdsSessionHost
    Write-Output "adjoin: joined $Domain as $ComputerName (staged account, one-time password); rebooting"
    exit 3010
}

# Lets the adGroupName groups (comma-separated) log in over RDP. Runs after the join's
# reboot too (SSM runs the script again after exit 3010), so a failure is reported, not
# lost.
function Grant-AdjoinRemoteDesktop {
    foreach ($group in @($AllowedGroup -split ',' | Where-Object { $_ })) {
        $member = "$Domain\$group"
        $present = Get-LocalGroupMember -Group 'Remote Desktop Users' -ErrorAction SilentlyContinue |
            Where-Object { $_.Name -ieq $member }
        if ($present) { continue }
        try {
            Add-LocalGroupMember -Group 'Remote Desktop Users' -Member $member
        } catch {
            Stop-Adjoin 15 "cannot add $member to Remote Desktop Users"
        }
    }
}

# RFC 4515 escaping: a group name is data in an LDAP filter, never filter syntax.
function ConvertTo-AdjoinLdapFilterValue([string] $Value) {
    $escaped = New-Object System.Text.StringBuilder
    foreach ($c in $Value.ToCharArray()) {
        if ('\*()'.Contains($c) -or [int] $c -eq 0) {
            [void] $escaped.AppendFormat('\{0:x2}', [int] $c)
        } else {
            [void] $escaped.Append($c)
        }
    }
    return $escaped.ToString()
}

# This computer's object, as the join user, over LDAP to the DC the join used.
function Get-AdjoinComputerEntry([pscredential] $Credential, [switch] $MustAnswer) {
    $root = New-Object System.DirectoryServices.DirectoryEntry("LDAP://$($DcIps[0])", $Credential.UserName, $Credential.GetNetworkCredential().Password)
    $searcher = New-Object System.DirectoryServices.DirectorySearcher($root)
    $searcher.Filter = "(&(objectCategory=computer)(sAMAccountName=$(ConvertTo-AdjoinLdapFilterValue "$ComputerName`$")))"
    [void] $searcher.PropertiesToLoad.Add('description')
    [void] $searcher.PropertiesToLoad.Add('distinguishedname')
    try {
        $computer = $searcher.FindOne()
    } catch {
        if ($MustAnswer) { Stop-Adjoin 13 'cannot search the directory for the computer object' }
        $computer = $null
    }
    return @{ Searcher = $searcher; Computer = $computer }
}

# Stamps the computer object with its owner (its description), as the join user.
function Set-AdjoinOwnerStamp($Found) {
    if (-not $Found.Computer) { Stop-Adjoin 18 "computer $ComputerName not found after the join" }
    try {
        $entry = $Found.Computer.GetDirectoryEntry()
        $entry.Properties['description'].Value = $OwnerStamp
        $entry.CommitChanges()
    } catch {
        Stop-Adjoin 18 "cannot write the owner stamp to the description of $ComputerName"
    }
}

# Adds this computer's account to each computerGroups group (ECS gMSA hosts must be in
# the group allowed to read the gMSA password). Already a member: nothing to do.
function Add-AdjoinComputerToGroup($Found) {
    if ($ComputerGroups.Count -eq 0) { return }
    $searcher = $Found.Searcher
    if (-not $Found.Computer) { Stop-Adjoin 16 "computer $ComputerName not found after the join" }
    $computerDn = $Found.Computer.Properties['distinguishedname'][0]
    foreach ($group in $ComputerGroups) {
        $searcher.Filter = "(&(objectCategory=group)(sAMAccountName=$(ConvertTo-AdjoinLdapFilterValue $group)))"
        try {
            $groupResult = $searcher.FindOne()
        } catch {
            Stop-Adjoin 16 "cannot search $Domain for group '$group'"
        }
        if (-not $groupResult) { Stop-Adjoin 16 "group '$group' not found in $Domain" }
        $entry = $groupResult.GetDirectoryEntry()
        if ($entry.Properties['member'] -contains $computerDn) { continue }
        try {
            [void] $entry.Properties['member'].Add($computerDn)
            $entry.CommitChanges()
        } catch {
            Stop-Adjoin 16 "cannot add $ComputerName to group '$group'"
        }
    }
}

# The Remote Desktop Session Host role, when the account's config asks for it (Windows
# Server only). Its reboot is the join's.
function Install-AdjoinRdsSessionHost {
    if (-not $InstallRds) { return }
    if ((Get-WindowsFeature -Name RDS-RD-Server).Installed) { return }
    try {
        Install-WindowsFeature -Name RDS-RD-Server | Out-Null
    } catch {
        Stop-Adjoin 17 'cannot install RDS-RD-Server'
    }
}

$system = Get-CimInstance -ClassName Win32_ComputerSystem
if ($system.PartOfDomain -and $system.Domain -ieq $Domain) {
    if ($env:COMPUTERNAME -ieq $ComputerName) {
        Reset-AdjoinMachinePassword
        Install-AdjoinRdsSessionHost
        Grant-AdjoinRemoteDesktop
        Write-Output "adjoin: already joined to $Domain as $ComputerName"
        exit 0
    }
    # Joined under another name: an image of another joined machine. Leave the domain
    # locally only (FUnjoinOptions 0: the other computer's object is neither disabled
    # nor deleted), reboot, and join as ComputerName on the next run.
    $unjoin = $system | Invoke-CimMethod -MethodName UnjoinDomainOrWorkgroup -Arguments @{ FUnjoinOptions = [uint32] 0 }
    if ($unjoin.ReturnValue -ne 0) {
        Stop-Adjoin 14 "joined to $Domain as $($env:COMPUTERNAME), not $ComputerName, and cannot leave it (code $($unjoin.ReturnValue))"
    }
    Write-Output "adjoin: joined to $Domain as $($env:COMPUTERNAME), not $ComputerName (an image of another machine?): left it locally; rebooting to join as $ComputerName"
    exit 3010
}

if ($JoinMode -ceq 'staged') { Join-AdjoinStaged }

$credential = Get-AdjoinCredential -Domain $Domain -JoinUser $JoinUser
Set-AdjoinDnsServers

# A computer of this name that someone else made (any user may create a few) must not
# become this instance's: Add-Computer would reuse it, and its creator keep control of it.
# Ours carries the owner stamp (a re-run after the stamp was written).
$existing = Get-AdjoinComputerEntry -Credential $credential -MustAnswer
if ($existing.Computer) {
    $description = @($existing.Computer.Properties['description'])[0]
    if ($description -ne $OwnerStamp) {
        Stop-Adjoin 19 "computer $ComputerName exists and is not this instance's; not taken over"
    }
}

$joinArgs = @{ DomainName = $Domain; Credential = $credential; Server = $DcIps[0]; Force = $true }
if ($OuPath) { $joinArgs.OUPath = $OuPath }
if ($env:COMPUTERNAME -ine $ComputerName) { $joinArgs.NewName = $ComputerName }

$attempt = 0
while ($true) {
    $attempt++
    try {
        Add-Computer @joinArgs
        break
    } catch {
        if ($attempt -ge 3) {
            Stop-Adjoin 14 "Add-Computer failed after $attempt attempts"
        }
        Start-Sleep -Seconds (15 * $attempt)
    }
}

$computerEntry = Get-AdjoinComputerEntry -Credential $credential
Set-AdjoinOwnerStamp $computerEntry
Add-AdjoinComputerToGroup $computerEntry
Install-AdjoinRdsSessionHost
Remove-Variable -Name credential

# Domain groups resolve only after the reboot: the grant runs on the script's second run.
Write-Output "adjoin: joined $Domain as $ComputerName; rebooting"
# Exit code 3010 asks SSM Agent to reboot the instance and report success.
exit 3010
