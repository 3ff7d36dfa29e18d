# adjoin: helpers shared by the Windows join, stage and leave scripts. The service sends this
# file ahead of each script, after the $ADJOIN_<NAME>_B64 = '<base64>' parameter block.
#
# Secrets: no message carries an error's own text (an exception message may quote the
# secret, e.g. ConvertFrom-Json on a secret that is not JSON): every failure prints a
# fixed message, and any error no catch handles ends the script through the trap below,
# which names only the line (exit 1).
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

# Writes the reason to stderr and exits with Code. (Write-Error would stop the script
# first, under ErrorActionPreference Stop, and every failure would exit 1.)
function Stop-Adjoin([int] $Code, [string] $Message) {
    [Console]::Error.WriteLine("adjoin: error: $Message")
    exit $Code
}

# Any error no catch handles: a fixed message and the script line, never the error text.
trap {
    $line = 0
    if ($_.InvocationInfo) { $line = $_.InvocationInfo.ScriptLineNumber }
    Stop-Adjoin 1 "unexpected failure at line $line of the script (its message is withheld)"
}

# The decoded value of $ADJOIN_<Name>_B64 (empty when unset). Values are data: decoded,
# never evaluated.
function Get-AdjoinParameter([string] $Name) {
    $encoded = Get-Variable -Name "ADJOIN_${Name}_B64" -ValueOnly -ErrorAction SilentlyContinue
    if (-not $encoded) { return '' }
    return [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($encoded))
}

# This instance's id, as SSM Agent hands it to the script (AWS_SSM_INSTANCE_ID), else as
# the instance metadata service (IMDSv2) gives it; empty when neither can tell.
function Get-AdjoinOwnInstanceId {
    $id = $env:AWS_SSM_INSTANCE_ID
    if (-not $id) {
        try {
            $token = Invoke-RestMethod -Method Put -Uri 'http://169.254.169.254/latest/api/token' `
                -Headers @{ 'X-aws-ec2-metadata-token-ttl-seconds' = '60' } -TimeoutSec 2
            $id = Invoke-RestMethod -Uri 'http://169.254.169.254/latest/meta-data/instance-id' `
                -Headers @{ 'X-aws-ec2-metadata-token' = $token } -TimeoutSec 2
        } catch {
            $id = ''
        }
    }
    if ($id -notmatch '^(i|mi)-[0-9a-f]{8,17}$') { return '' }
    return $id
}

# The values of one row of an INSTANCES table (an instance id, then NAME=<base64> pairs),
# set as $ADJOIN_<NAME>_B64 for Get-AdjoinParameter. Only the values an instance may have
# of its own are taken; each stays base64 data. Exit 10 for anything else.
function Use-AdjoinRow([string] $Row) {
    $words = @($Row -split ' ' | Where-Object { $_ })
    if ($words.Count -eq 0 -or $words[0] -notmatch '^(i|mi)-[0-9a-f]{8,17}$') {
        Stop-Adjoin 10 'an INSTANCES row does not start with an instance id'
    }
    $own = @('COMPUTER_NAME', 'ALLOWED_GROUP', 'SUDO_GROUPS', 'INSTANCE_ID', 'OWNER_STAMP',
        'OTP_SSM_PARAMETER', 'OU_PATH', 'COMPUTER_GROUPS')
    foreach ($pair in @($words | Select-Object -Skip 1)) {
        $name, $value = $pair -split '=', 2
        if ($own -cnotcontains $name) { Stop-Adjoin 10 'the INSTANCES table names a value an instance cannot have of its own' }
        if ($value -notmatch '^[A-Za-z0-9+/]*={0,2}$') { Stop-Adjoin 10 'the INSTANCES table holds a value that is not base64' }
        Set-Variable -Name "ADJOIN_${name}_B64" -Value $value -Scope Script
    }
}

# For a join sent to several instances: this instance's own row of the INSTANCES table,
# found by its id. Exit 10 when this instance cannot be told or has no row.
function Use-AdjoinOwnValues {
    $table = Get-AdjoinParameter 'INSTANCES'
    if (-not $table) { return }
    $id = Get-AdjoinOwnInstanceId
    if (-not $id) { Stop-Adjoin 10 'cannot tell which instance this is (no AWS_SSM_INSTANCE_ID, no instance metadata)' }
    $row = @($table -split "`n" | Where-Object { ($_ -split ' ')[0] -ceq $id }) | Select-Object -First 1
    if (-not $row) { Stop-Adjoin 10 "instance $id has no row in the command's INSTANCES table" }
    Use-AdjoinRow $row
}

# On the AD tools host, a command for several instances (an INSTANCES table) runs this
# script again once per row, one after the other, each run with that row's values alone
# (ADJOIN_ROW) and its own exit code. Each run's output lines are prefixed with the
# instance id, then "adjoin-result <instance-id> <exit code>"; the command exits 0 when
# every row succeeded, else with the last failure's code. A run for one row, or a command
# without a table, goes on with the script.
function Invoke-AdjoinForEachRow {
    if ($env:ADJOIN_ROW) {
        Use-AdjoinRow $env:ADJOIN_ROW
        return
    }
    $table = Get-AdjoinParameter 'INSTANCES'
    if (-not $table) { return }
    if (-not $PSCommandPath) { Stop-Adjoin 10 'cannot run the script once per instance (no script path)' }
    $status = 0
    foreach ($row in @($table -split "`n" | Where-Object { $_ })) {
        $id = ($row -split ' ')[0]
        if ($id -notmatch '^(i|mi)-[0-9a-f]{8,17}$') { Stop-Adjoin 10 'an INSTANCES row does not start with an instance id' }
        $env:ADJOIN_ROW = $row
        $out = @(& powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File $PSCommandPath 2>&1)
        $rc = $LASTEXITCODE
        $env:ADJOIN_ROW = $null
        foreach ($line in $out) { Write-Output "${id}: $line" }
        Write-Output "adjoin-result $id $rc"
        if ($rc -ne 0) { $status = $rc }
    }
    exit $status
}

# The parameters both scripts take, set as script variables: $Domain, $DcIps (the
# addresses in DC_IPS), $JoinUser, $ComputerName, $OuPath and $OwnerStamp.
function Read-AdjoinCommonParameters {
    $script:Domain = Get-AdjoinParameter 'DOMAIN'
    $script:DcIps = @((Get-AdjoinParameter 'DC_IPS') -split ' ' | Where-Object { $_ })
    $script:JoinUser = Get-AdjoinParameter 'JOIN_USER'
    $script:ComputerName = Get-AdjoinParameter 'COMPUTER_NAME'
    $script:OuPath = Get-AdjoinParameter 'OU_PATH'
    $script:OwnerStamp = Get-AdjoinParameter 'OWNER_STAMP'
}

# A staged join's one-time password, as a SecureString, from the SecureString parameter
# OTP_SSM_PARAMETER in OTP_REGION, read with this host's own role; the parameter is
# deleted right after (a second delivery of the command finds none: exit 12, and the
# service stages afresh).
function Read-AdjoinOneTimePassword {
    $name = Get-AdjoinParameter 'OTP_SSM_PARAMETER'
    $region = Get-AdjoinParameter 'OTP_REGION'
    if (-not $name -or -not $region) { Stop-Adjoin 10 'missing one-time password parameter' }
    try {
        $plain = (Get-SSMParameter -Name $name -WithDecryption $true -Region $region).Value
    } catch {
        Stop-Adjoin 12 "cannot read the one-time password parameter $name"
    }
    try {
        Remove-SSMParameter -Name $name -Region $region -Force
    } catch {
        Write-Output "adjoin: could not delete $name (it expires on its own)"
    }
    if ($plain -notmatch '^[A-Za-z0-9]+$') { Stop-Adjoin 12 'the one-time password parameter does not hold a one-time password' }
    $secure = ConvertTo-SecureString -String $plain -AsPlainText -Force
    Remove-Variable -Name plain
    return $secure
}

# The join user's credential, its password read with this host's own role from Secrets
# Manager or SSM Parameter Store and kept as a SecureString. Exits 12 when it cannot.
function Get-AdjoinCredential([string] $Domain, [string] $JoinUser) {
    $secretArn = Get-AdjoinParameter 'PASSWORD_SECRET_ARN'
    $parameter = Get-AdjoinParameter 'PASSWORD_SSM_PARAMETER'
    $region = Get-AdjoinParameter 'SECRET_REGION'
    $plain = $null
    if ($secretArn) {
        try {
            $json = (Get-SECSecretValue -SecretId $secretArn -Region $region).SecretString
        } catch {
            Stop-Adjoin 12 'cannot read the join secret'
        }
        try {
            $secret = $json | ConvertFrom-Json
        } catch {
            Stop-Adjoin 12 'the join secret is not JSON'
        }
        Remove-Variable -Name json
        $names = @()
        if ($null -ne $secret) { $names = @($secret.PSObject.Properties | ForEach-Object { $_.Name }) }
        if ($names -cnotcontains 'password' -or -not ($secret.password -is [string])) {
            Stop-Adjoin 12 'the join secret has no "password" string'
        }
        $plain = $secret.password
        Remove-Variable -Name secret
    } elseif ($parameter) {
        try {
            # Get-SSMParameter calls ssm:GetParameter, the action the instance and tools-host
            # policies grant (Get-SSMParameterValue would call ssm:GetParameters).
            $plain = (Get-SSMParameter -Name $parameter -WithDecryption $true -Region $region).Value
        } catch {
            Stop-Adjoin 12 'cannot read the join password parameter'
        }
    } else {
        Stop-Adjoin 10 'no password reference'
    }
    if (-not $plain) { Stop-Adjoin 12 'the join password is empty' }
    $securePassword = ConvertTo-SecureString -String $plain -AsPlainText -Force
    Remove-Variable -Name plain
    return New-Object System.Management.Automation.PSCredential("$JoinUser@$Domain", $securePassword)
}
