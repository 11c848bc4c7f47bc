#!/usr/bin/env python3
# Writes a benchmark mailbox straight into a server's Maildir (LAYOUT=fs,
# non-ASCII names in modified UTF-7 on disk); Dovecot indexes it on first
# access. Deterministic (seed 42), for bench/e2e and bench/migrate-e2e.
#
#   seed_maildir.py MAILDIR MESSAGES FOLDERS realistic|small BIG_MB
import os, random, sys
root, total, folders, sizes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
big_mb = int(sys.argv[5])
random.seed(42)
# (IMAP name, directory under the Maildir)
names = [("INBOX", ""), ("Archive", "Archive"), ("Archive/2023", "Archive/2023"),
         ("Archive/2023/Q1", "Archive/2023/Q1"), ("Entw\u00fcrfe", "Entw&APw-rfe"),
         ("Sent Items", "Sent Items")]
names += [(f"Folder{i:02d}", f"Folder{i:02d}") for i in range(len(names), folders)]
# Bigger folders first, as mailboxes are: INBOX and the archive hold most.
weights = [1.0 / (i + 1) for i in range(len(names))]
line = "The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.\n"
def body_size():
    if sizes == "small":
        return random.randint(1024, 8192)
    if random.random() < 0.05:
        return random.randint(100 << 10, 2 << 20)
    return int(min(max(random.lognormvariate(8.7, 0.6), 800), 90 << 10))  # median ~6 KB
for _, directory in names:
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, directory, sub), exist_ok=True)
for index in range(total):
    _, directory = random.choices(names, weights)[0]
    flags = "S" if random.random() < 0.8 else ""
    if random.random() < 0.05: flags = "F" + flags
    header = (f"From: sender{index % 97}@example.com\nTo: alice@example.com\n"
              f"Subject: message {index}\nMessage-ID: <bench{index}@example.com>\n"
              f"Date: Tue, 1 Jan 2030 00:00:00 +0000\n\n")
    size = body_size()
    body = line * (size // len(line) + 1)
    path = os.path.join(root, directory, "cur", f"{1600000000 + index}.M{index}P1.bench:2,{flags}")
    with open(path, "w") as f:
        f.write(header + body[:size])
if big_mb > 0:
    with open(os.path.join(root, "cur", "1599999999.Mbig.bench:2,S"), "w") as f:
        f.write("From: big@example.com\nSubject: big\nMessage-ID: <big@example.com>\n\n")
        chunk = line * (1 << 14)
        left = big_mb << 20
        while left > 0:
            f.write(chunk[:left])
            left -= len(chunk)
