# adjoin: delete a terminated instance's computer object, run on a Windows AD tools host
# (RSAT ActiveDirectory module installed). Parameters arrive as $ADJOIN_<NAME>_B64
# assignments above this script and are decoded as data.
#
# Exit codes: 0 deleted (or already absent), 10 bad parameters, 12 password unreadable,
# 14 delete failed.
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
$InstanceId = Get-AdjoinParameter 'INSTANCE_ID'

if (-not $Domain -or -not $JoinUser -or $DcIps.Count -eq 0 -or $ComputerName -notmatch '^[A-Za-z0-9-]{1,15}$') {
    Write-Error 'adjoin: missing or invalid parameter'
    exit 10
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
    Write-Error "adjoin: Remove-ADComputer $ComputerName failed: $($_.Exception.Message)"
    exit 14
}
Write-Output "adjoin: deleted computer $ComputerName of $InstanceId from $Domain"
