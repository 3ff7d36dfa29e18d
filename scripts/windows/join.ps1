# adjoin: join this Windows instance to Active Directory.
#
# Run by SSM Run Command (AWS-RunPowerShellScript). The service places the parameters
# above this script as $ADJOIN_<NAME>_B64 = '<base64>' assignments; they are decoded
# here as data. The join password is never a parameter: it is read with the instance's
# own role and kept as a SecureString.
#
# Exit codes: 0 joined (reboot scheduled) or already joined, 10 bad parameters,
# 12 password unreadable, 14 join failed.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

function Get-AdjoinParameter([string] $Name) {
    $encoded = Get-Variable -Name "ADJOIN_${Name}_B64" -ValueOnly -ErrorAction SilentlyContinue
    if (-not $encoded) { return '' }
    return [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($encoded))
}

$Domain = Get-AdjoinParameter 'DOMAIN'
$DcIps = @((Get-AdjoinParameter 'DC_IPS') -split ' ' | Where-Object { $_ })
$JoinUser = Get-AdjoinParameter 'JOIN_USER'
$PasswordParameter = Get-AdjoinParameter 'PASSWORD_SSM_PARAMETER'
$PasswordSecretArn = Get-AdjoinParameter 'PASSWORD_SECRET_ARN'
$SecretRegion = Get-AdjoinParameter 'SECRET_REGION'
$ComputerName = Get-AdjoinParameter 'COMPUTER_NAME'
$OuPath = Get-AdjoinParameter 'OU_PATH'
$AllowedGroup = Get-AdjoinParameter 'ALLOWED_GROUP'

if (-not $Domain -or -not $JoinUser -or -not $ComputerName -or $DcIps.Count -eq 0) {
    Write-Error 'adjoin: missing parameter (domain, DC IPs, join user and computer name are required)'
    exit 10
}

$system = Get-CimInstance -ClassName Win32_ComputerSystem
if ($system.PartOfDomain -and $system.Domain -ieq $Domain) {
    Write-Output "adjoin: already joined to $Domain as $($env:COMPUTERNAME)"
    exit 0
}

try {
    if ($PasswordSecretArn) {
        $secret = (Get-SECSecretValue -SecretId $PasswordSecretArn -Region $SecretRegion).SecretString | ConvertFrom-Json
        $securePassword = ConvertTo-SecureString -String $secret.password -AsPlainText -Force
        Remove-Variable -Name secret
    } else {
        $plain = (Get-SSMParameterValue -Name $PasswordParameter -WithDecryption $true -Region $SecretRegion).Parameters[0].Value
        $securePassword = ConvertTo-SecureString -String $plain -AsPlainText -Force
        Remove-Variable -Name plain
    }
} catch {
    Write-Error "adjoin: cannot read the join password: $($_.Exception.Message)"
    exit 12
}
$credential = New-Object System.Management.Automation.PSCredential("$JoinUser@$Domain", $securePassword)

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
            Write-Error "adjoin: Add-Computer failed after $attempt attempts: $($_.Exception.Message)"
            exit 14
        }
        Start-Sleep -Seconds (15 * $attempt)
    }
}

if ($AllowedGroup) {
    Add-LocalGroupMember -Group 'Remote Desktop Users' -Member "$Domain\$AllowedGroup" -ErrorAction SilentlyContinue
}
Write-Output "adjoin: joined $Domain as $ComputerName; rebooting"
# Exit code 3010 asks SSM Agent to reboot the instance and report success.
exit 3010
