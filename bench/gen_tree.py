#!/usr/bin/python3
"""Generates the application tree of the build benchmark.

`gen_tree.py OUT_PARENT [--megabytes 200] [--files 8000] [--seed 1]` writes, under
`OUT_PARENT/tree-<key>/`:

- `root/opt/benchapp/1.0/`: about MEGABYTES of FILES regular files plus symlinks: real
  ELF shared libraries and executables copied from this machine (/usr/lib/x86_64-linux-gnu,
  /usr/bin) with bytes of their .text and .rodata sections altered (so no two copies are
  the same, while every ELF structure stays readable), text files (compressible),
  random files (incompressible), mixed files, and relative symlinks (library dev links,
  links into bin/, a directory link);
- `root/DEBIAN/control`: the minimal control file for `dpkg-deb -b root`;
- `debstage.toml`: `kind = "dir"` pointing at the same tree, with `[depends]
  ignore-sonames` for the sonames the copied ELF files need that this machine's
  multiarch library directories do not have (plugins' private libraries);
- `tree.json`: what was generated (counts, bytes, needed and bundled sonames).

The same parameters give the same tree on the same machine; the directory is reused
when complete.
"""

import argparse
import json
import os
import random
import shutil
import struct
import sys

GENERATOR_VERSION = 1
APP = "benchapp"
VERSION = "1.0"
LIBRARY_DIRECTORIES = ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"]
# Shares of the byte budget; text files take what is left of the file count.
ELF_LIBRARY_SHARE = 0.35
ELF_PROGRAM_SHARE = 0.10
RANDOM_SHARE = 0.15
MIXED_SHARE = 0.20
RANDOM_FILES_SHARE = 0.04
MIXED_FILES_SHARE = 0.20
LARGEST_ELF = 6 * 1024 * 1024


class Elf:
    """The few facts of an ELF64 little-endian file this generator needs."""

    def __init__(self, data):
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise ValueError("not an ELF64 little-endian file")
        section_offset = struct.unpack_from("<Q", data, 0x28)[0]
        entry_size, count, names_index = struct.unpack_from("<HHH", data, 0x3A)
        if section_offset == 0 or count == 0 or entry_size != 64:
            raise ValueError("no section headers")
        sections = []
        for index in range(count):
            base = section_offset + index * entry_size
            name, kind, _, _, offset, size = struct.unpack_from("<IIQQQQ", data, base)
            sections.append((name, kind, offset, size))
        names_offset = sections[names_index][2]
        self.sections = {}
        for name, kind, offset, size in sections:
            end = data.index(b"\0", names_offset + name)
            self.sections[data[names_offset + name : end].decode("ascii", "replace")] = (
                kind,
                offset,
                size,
            )
        self.needed = []
        self.soname = None
        if ".dynamic" in self.sections and ".dynstr" in self.sections:
            _, dynamic_offset, dynamic_size = self.sections[".dynamic"]
            _, strings_offset, _ = self.sections[".dynstr"]
            for position in range(dynamic_offset, dynamic_offset + dynamic_size, 16):
                tag, value = struct.unpack_from("<qQ", data, position)
                if tag == 0:
                    break
                if tag in (1, 14):  # DT_NEEDED, DT_SONAME
                    start = strings_offset + value
                    text = data[start : data.index(b"\0", start)].decode("ascii", "replace")
                    if tag == 1:
                        self.needed.append(text)
                    else:
                        self.soname = text


def altered_copy(data, rng):
    """A copy of an ELF file with code and read-only data bytes changed here and there."""
    elf = Elf(data)
    copy = bytearray(data)
    for name in (".text", ".rodata"):
        if name not in elf.sections:
            continue
        _, offset, size = elf.sections[name]
        position = offset + rng.randrange(1, 64)
        while position < offset + size:
            copy[position] = rng.randrange(256)
            position += rng.randrange(16, 160)
    return bytes(copy), elf


def elf_sources(directories, predicate):
    """Regular ELF64 files under `directories` (not recursing) that pass `predicate`."""
    found = []
    for directory in directories:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            if os.path.islink(path) or not os.path.isfile(path) or not predicate(name):
                continue
            size = os.path.getsize(path)
            if size < 4096 or size > LARGEST_ELF:
                continue
            with open(path, "rb") as source:
                head = source.read(6)
            if head[:4] == b"\x7fELF" and head[4] == 2 and head[5] == 1:
                found.append(path)
    return found


WORDS = None


def words(rng):
    """A fixed vocabulary of made-up words, so text compresses like text."""
    global WORDS
    if WORDS is None:
        syllables = ["ka", "lo", "mi", "ren", "sto", "al", "be", "quo", "tri", "zen", "on", "ux"]
        vocabulary_rng = random.Random(7)
        WORDS = [
            "".join(vocabulary_rng.choice(syllables) for _ in range(vocabulary_rng.randint(1, 4)))
            for _ in range(3000)
        ] + ["def", "return", "import", "class", "self", "if", "else", "for", "in", "None"]
    return WORDS


def text_content(rng, size):
    """Program-like text of about `size` bytes."""
    vocabulary = words(rng)
    lines = []
    total = 0
    while total < size:
        indent = "    " * rng.randint(0, 3)
        line = indent + " ".join(rng.choice(vocabulary) for _ in range(rng.randint(2, 12)))
        lines.append(line)
        total += len(line) + 1
    return ("\n".join(lines) + "\n").encode()[:size]


def mixed_content(rng, size):
    """Segments of random bytes, zeros, a repeated pattern and text."""
    parts = []
    total = 0
    while total < size:
        length = min(size - total, rng.randint(512, 65536))
        kind = rng.randrange(4)
        if kind == 0:
            part = rng.randbytes(length)
        elif kind == 1:
            part = bytes(length)
        elif kind == 2:
            pattern = rng.randbytes(rng.randint(4, 64))
            part = (pattern * (length // len(pattern) + 1))[:length]
        else:
            part = text_content(rng, length)
        parts.append(part)
        total += len(part)
    return b"".join(parts)


def split_sizes(rng, count, budget, spread=1.5):
    """`count` positive sizes summing to about `budget`, log-normally spread."""
    weights = [rng.lognormvariate(0, spread) for _ in range(count)]
    scale = budget / sum(weights)
    return [max(16, int(weight * scale)) for weight in weights]


def write(path, content, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as output:
        output.write(content)
    os.chmod(path, mode)


def generate(release, megabytes, file_count, seed):
    """Writes the tree into `release` and returns its description."""
    rng = random.Random(seed)
    budget = megabytes * 1024 * 1024
    summary = {"files": 0, "bytes": 0, "symlinks": 0, "kinds": {}, "needed": set(), "bundled": set()}

    def add(kind, relative, content, mode):
        write(os.path.join(release, relative), content, mode)
        entry = summary["kinds"].setdefault(kind, {"files": 0, "bytes": 0})
        entry["files"] += 1
        entry["bytes"] += len(content)
        summary["files"] += 1
        summary["bytes"] += len(content)

    def link(relative, target):
        path = os.path.join(release, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, path)
        summary["symlinks"] += 1

    def add_elf(kind, relative, source, mode):
        with open(source, "rb") as original:
            content, elf = altered_copy(original.read(), rng)
        add(kind, relative, content, mode)
        summary["needed"].update(elf.needed)
        if elf.soname:
            summary["bundled"].add(elf.soname)
        return elf

    libraries = elf_sources(LIBRARY_DIRECTORIES[:1], lambda name: ".so" in name)
    programs = elf_sources(["/usr/bin"], lambda name: True)
    if not libraries or not programs:
        sys.exit("gen_tree.py: no ELF files found under /usr/lib/x86_64-linux-gnu or /usr/bin")

    # Shared libraries, grouped in plugin directories, each with its dev symlink.
    spent = 0
    group = 0
    while spent < budget * ELF_LIBRARY_SHARE:
        source = rng.choice(libraries)
        name = os.path.basename(source)
        relative = f"lib/plugins-{group % 40:02d}/{name}"
        group += 1
        if os.path.exists(os.path.join(release, relative)):
            continue
        elf = add_elf("elf-library", relative, source, 0o644)
        spent += os.path.getsize(source)
        dev_name = name.split(".so")[0] + ".so"
        dev_link = os.path.join(os.path.dirname(relative), dev_name)
        if dev_name != name and not os.path.lexists(os.path.join(release, dev_link)):
            link(dev_link, name)
        del elf

    # Programs in bin/, a few also reachable through a link in sbin/.
    spent = 0
    while spent < budget * ELF_PROGRAM_SHARE:
        source = rng.choice(programs)
        relative = f"bin/{os.path.basename(source)}"
        if os.path.exists(os.path.join(release, relative)):
            relative = f"libexec/{group:04d}/{os.path.basename(source)}"
        group += 1
        add_elf("elf-program", relative, source, 0o755)
        spent += os.path.getsize(source)
        if rng.random() < 0.2:
            link(f"sbin/{os.path.basename(relative)}-{group}", f"../{relative}")

    remaining_files = max(1, file_count - summary["files"])
    random_files = max(1, int(remaining_files * RANDOM_FILES_SHARE))
    mixed_files = max(1, int(remaining_files * MIXED_FILES_SHARE))
    text_files = max(1, remaining_files - random_files - mixed_files)
    remaining_bytes = max(budget - summary["bytes"], budget // 10)
    random_budget = remaining_bytes * RANDOM_SHARE / (RANDOM_SHARE + MIXED_SHARE + 0.20)
    mixed_budget = remaining_bytes * MIXED_SHARE / (RANDOM_SHARE + MIXED_SHARE + 0.20)
    text_budget = remaining_bytes - random_budget - mixed_budget

    for index, size in enumerate(split_sizes(rng, random_files, random_budget, 1.0)):
        add("random", f"data/blobs/{index % 16:02d}/blob-{index:04d}.bin", rng.randbytes(size), 0o644)
    for index, size in enumerate(split_sizes(rng, mixed_files, mixed_budget, 1.0)):
        add("mixed", f"data/mixed/{index % 32:02d}/asset-{index:04d}.dat", mixed_content(rng, size), 0o644)
    extensions = [".py", ".txt", ".json", ".html", ".cfg", ".md"]
    for index, size in enumerate(split_sizes(rng, text_files, text_budget, 1.2)):
        package = f"app/package_{index % 97:02d}/module_{index % 13:02d}"
        extension = extensions[index % len(extensions)]
        add("text", f"{package}/file_{index:05d}{extension}", text_content(rng, size), 0o644)

    # Links into the tree: a directory link and links to text files.
    link("share", "app")
    for index in range(0, text_files, max(1, text_files // 100)):
        package = f"app/package_{index % 97:02d}/module_{index % 13:02d}"
        extension = extensions[index % len(extensions)]
        link(f"links/file_{index:05d}{extension}", f"../{package}/file_{index:05d}{extension}")

    summary["needed"] = sorted(summary["needed"])
    summary["bundled"] = sorted(summary["bundled"])
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parent")
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--files", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()

    key = f"m{arguments.megabytes}-f{arguments.files}-s{arguments.seed}-g{GENERATOR_VERSION}"
    directory = os.path.join(arguments.parent, f"tree-{key}")
    stamp = os.path.join(directory, ".complete")
    if os.path.exists(stamp):
        print(directory)
        return
    if os.path.exists(directory):
        shutil.rmtree(directory)
    root = os.path.join(directory, "root")
    release = os.path.join(root, "opt", APP, VERSION)
    os.makedirs(release)
    summary = generate(release, arguments.megabytes, arguments.files, arguments.seed)

    os.makedirs(os.path.join(root, "DEBIAN"))
    with open(os.path.join(root, "DEBIAN", "control"), "w", encoding="utf-8") as control:
        control.write(
            f"Package: {APP}-{VERSION}\n"
            f"Version: {VERSION}-1\n"
            "Architecture: amd64\n"
            "Maintainer: debstage benchmark <bench@example.invalid>\n"
            f"Description: benchmark tree of {arguments.megabytes} MB\n"
        )

    # Sonames the tree needs, does not bundle, and the system's multiarch directories do
    # not have: private libraries of the programs the copies came from.
    unresolvable = [
        soname
        for soname in summary["needed"]
        if soname not in summary["bundled"]
        and not any(os.path.exists(os.path.join(d, soname)) for d in LIBRARY_DIRECTORIES)
    ]
    summary["ignored_sonames"] = unresolvable
    ignore = ", ".join(json.dumps(soname) for soname in unresolvable)
    with open(os.path.join(directory, "debstage.toml"), "w", encoding="utf-8") as manifest:
        manifest.write(
            "# Written by bench/gen_tree.py: the build benchmark's application.\n"
            "[package]\n"
            f'name = "{APP}"\n'
            f'version = "{VERSION}"\n'
            'maintainer = "debstage benchmark <bench@example.invalid>"\n'
            f'description = "benchmark tree of {arguments.megabytes} MB"\n'
            "\n[environment]\n"
            'kind = "dir"\n'
            f'source = "root/opt/{APP}/{VERSION}"\n'
            "\n[depends]\n"
            f"ignore-sonames = [{ignore}]\n"
        )
    with open(os.path.join(directory, "tree.json"), "w", encoding="utf-8") as description:
        json.dump(summary, description, indent=1)
    with open(stamp, "w", encoding="utf-8") as marker:
        marker.write("complete\n")
    print(directory)


if __name__ == "__main__":
    main()
