# adjoin: join this Windows instance to Active Directory.
#
# Run by SSM Run Command (AWS-RunPowerShellScript). The service places the parameters
# above this script as $ADJOIN_<NAME>_B64 = '<base64>' assignments; they are decoded
# here as data. The join password is never a parameter: it is read with the instance's
# own role and kept as a SecureString.
#
# Exit codes: 0 joined (reboot scheduled) or already joined, 10 bad parameters,
# 12 password unreadable, 14 join failed, 15 Remote Desktop grant failed.
# Get-AdjoinParameter, Get-AdjoinCredential and the error preferences come from
# common.ps1, which the service sends ahead of this script.

$Domain = Get-AdjoinParameter 'DOMAIN'
$DcIps = @((Get-AdjoinParameter 'DC_IPS') -split ' ' | Where-Object { $_ })
$JoinUser = Get-AdjoinParameter 'JOIN_USER'
$ComputerName = Get-AdjoinParameter 'COMPUTER_NAME'
$OuPath = Get-AdjoinParameter 'OU_PATH'
$AllowedGroup = Get-AdjoinParameter 'ALLOWED_GROUP'

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

$system = Get-CimInstance -ClassName Win32_ComputerSystem
if ($system.PartOfDomain -and $system.Domain -ieq $Domain) {
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

# Domain groups resolve only after the reboot: the grant runs on the script's second run.
Write-Output "adjoin: joined $Domain as $ComputerName; rebooting"
# Exit code 3010 asks SSM Agent to reboot the instance and report success.
exit 3010
