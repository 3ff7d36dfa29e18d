# adjoin: join this Windows instance to Active Directory.
#
# Run by SSM Run Command (AWS-RunPowerShellScript). The service places the parameters
# above this script as $ADJOIN_<NAME>_B64 = '<base64>' assignments; they are decoded
# here as data. The join password is never a parameter: it is read with the instance's
# own role and kept as a SecureString.
#
# Exit codes: 0 already joined, 3010 joined (SSM Agent reboots the instance and runs the
# script again), 10 bad parameters, 12 password unreadable, 14 join failed, 15 Remote
# Desktop grant failed, 16 joined but not added to a computerGroups group, 17 the Remote
# Desktop Session Host role could not be installed.
# Get-AdjoinParameter, Get-AdjoinCredential and the error preferences come from
# common.ps1, which the service sends ahead of this script.

$Domain = Get-AdjoinParameter 'DOMAIN'
$DcIps = @((Get-AdjoinParameter 'DC_IPS') -split ' ' | Where-Object { $_ })
$JoinUser = Get-AdjoinParameter 'JOIN_USER'
$ComputerName = Get-AdjoinParameter 'COMPUTER_NAME'
$OuPath = Get-AdjoinParameter 'OU_PATH'
$AllowedGroup = Get-AdjoinParameter 'ALLOWED_GROUP'
$ComputerGroups = @((Get-AdjoinParameter 'COMPUTER_GROUPS') -split "`n" | Where-Object { $_ })
$InstallRds = (Get-AdjoinParameter 'INSTALL_RDS_SESSION_HOST') -eq 'true'

if (-not $Domain -or -not $JoinUser -or -not $ComputerName -or $DcIps.Count -eq 0) {
    Stop-Adjoin 10 'missing parameter (domain, DC IPs, join user and computer name are required)'
}

# Lets the adGroupName group log in over RDP. Runs after the join's reboot too (SSM runs
# the script again after exit 3010), so a failure is reported, not lost.
function Grant-AdjoinRemoteDesktop {
    if (-not $AllowedGroup) { return }
    $member = "$Domain\$AllowedGroup"
    $present = Get-LocalGroupMember -Group 'Remote Desktop Users' -ErrorAction SilentlyContinue |
        Where-Object { $_.Name -ieq $member }
    if ($present) { return }
    try {
        Add-LocalGroupMember -Group 'Remote Desktop Users' -Member $member
    } catch {
        Stop-Adjoin 15 "cannot add $member to Remote Desktop Users: $($_.Exception.Message)"
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

# Adds this computer's account to each computerGroups group (ECS gMSA hosts must be in
# the group allowed to read the gMSA password), as the join user, over LDAP to the DC
# the join used. Already a member: nothing to do.
function Add-AdjoinComputerToGroup([pscredential] $Credential) {
    if ($ComputerGroups.Count -eq 0) { return }
    $user = $Credential.UserName
    $root = New-Object System.DirectoryServices.DirectoryEntry("LDAP://$($DcIps[0])", $user, $Credential.GetNetworkCredential().Password)
    $searcher = New-Object System.DirectoryServices.DirectorySearcher($root)
    $searcher.Filter = "(&(objectCategory=computer)(sAMAccountName=$(ConvertTo-AdjoinLdapFilterValue "$ComputerName`$")))"
    $computer = $searcher.FindOne()
    if (-not $computer) { Stop-Adjoin 16 "computer $ComputerName not found after the join" }
    $computerDn = $computer.Properties['distinguishedname'][0]
    foreach ($group in $ComputerGroups) {
        $searcher.Filter = "(&(objectCategory=group)(sAMAccountName=$(ConvertTo-AdjoinLdapFilterValue $group)))"
        $found = $searcher.FindOne()
        if (-not $found) { Stop-Adjoin 16 "group '$group' not found in $Domain" }
        $entry = $found.GetDirectoryEntry()
        if ($entry.Properties['member'] -contains $computerDn) { continue }
        try {
            [void] $entry.Properties['member'].Add($computerDn)
            $entry.CommitChanges()
        } catch {
            Stop-Adjoin 16 "cannot add $ComputerName to group '$group': $($_.Exception.Message)"
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
        Stop-Adjoin 17 "cannot install RDS-RD-Server: $($_.Exception.Message)"
    }
}

$system = Get-CimInstance -ClassName Win32_ComputerSystem
if ($system.PartOfDomain -and $system.Domain -ieq $Domain) {
    Install-AdjoinRdsSessionHost
    Grant-AdjoinRemoteDesktop
    Write-Output "adjoin: already joined to $Domain as $($env:COMPUTERNAME)"
    exit 0
}

$credential = Get-AdjoinCredential -Domain $Domain -JoinUser $JoinUser

# Resolve the domain through its own DCs, keeping the VPC resolver after them.
$adapter = Get-NetAdapter | Where-Object { $_.Status -eq 'Up' } | Select-Object -First 1
$current = (Get-DnsClientServerAddress -InterfaceIndex $adapter.ifIndex -AddressFamily IPv4).ServerAddresses
Set-DnsClientServerAddress -InterfaceIndex $adapter.ifIndex -ServerAddresses (@($DcIps) + @($current | Where-Object { $DcIps -notcontains $_ }))

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
            Stop-Adjoin 14 "Add-Computer failed after $attempt attempts: $($_.Exception.Message)"
        }
        Start-Sleep -Seconds (15 * $attempt)
    }
}

Add-AdjoinComputerToGroup -Credential $credential
Install-AdjoinRdsSessionHost
Remove-Variable -Name credential

# Domain groups resolve only after the reboot: the grant runs on the script's second run.
Write-Output "adjoin: joined $Domain as $ComputerName; rebooting"
# Exit code 3010 asks SSM Agent to reboot the instance and report success.
exit 3010
