# adjoin: helpers shared by the Windows join and leave scripts. The service sends this
# file ahead of each script, after the $ADJOIN_<NAME>_B64 = '<base64>' parameter block.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

# Writes the reason to stderr and exits with Code. (Write-Error would stop the script
# first, under ErrorActionPreference Stop, and every failure would exit 1.)
function Stop-Adjoin([int] $Code, [string] $Message) {
    [Console]::Error.WriteLine("adjoin: error: $Message")
    exit $Code
}

# The decoded value of $ADJOIN_<Name>_B64 (empty when unset). Values are data: decoded,
# never evaluated.
function Get-AdjoinParameter([string] $Name) {
    $encoded = Get-Variable -Name "ADJOIN_${Name}_B64" -ValueOnly -ErrorAction SilentlyContinue
    if (-not $encoded) { return '' }
    return [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($encoded))
}

# The join user's credential, its password read with this host's own role from Secrets
# Manager or SSM Parameter Store and kept as a SecureString. Exits 12 when it cannot.
function Get-AdjoinCredential([string] $Domain, [string] $JoinUser) {
    $secretArn = Get-AdjoinParameter 'PASSWORD_SECRET_ARN'
    $parameter = Get-AdjoinParameter 'PASSWORD_SSM_PARAMETER'
    $region = Get-AdjoinParameter 'SECRET_REGION'
    try {
        if ($secretArn) {
            $secret = (Get-SECSecretValue -SecretId $secretArn -Region $region).SecretString | ConvertFrom-Json
            $securePassword = ConvertTo-SecureString -String $secret.password -AsPlainText -Force
            Remove-Variable -Name secret
        } else {
            $plain = (Get-SSMParameterValue -Name $parameter -WithDecryption $true -Region $region).Parameters[0].Value
            $securePassword = ConvertTo-SecureString -String $plain -AsPlainText -Force
            Remove-Variable -Name plain
        }
    } catch {
        Stop-Adjoin 12 "cannot read the join password: $($_.Exception.Message)"
    }
    return New-Object System.Management.Automation.PSCredential("$JoinUser@$Domain", $securePassword)
}
