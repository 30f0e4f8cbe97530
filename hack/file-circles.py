#!/usr/bin/env python3
"""Files that import each other (a file circle), in every crate of the
workspace: `use super::…`, `use crate::…` and a parent's `use child::…` of
a `#[path]` child, resolved to files. Prints the pairs, or "no file
circles"; exits 1 when there are any. Run from the repository root."""
import re, os, glob, itertools
def files(root):
    for f in glob.glob(root+'/**/*.rs', recursive=True):
        yield f
pairs=[]
for crate in glob.glob('crates/*/src')+['src']:
    fs=list(files(crate))
    # module name -> file, based on file stem and #[path] declarations
    path_mods={}  # (parent file, modname) -> file
    for f in fs:
        txt=open(f).read()
        for m in re.finditer(r'#\[path = "([^"]+)"\]\s*(?:pub(?:\([a-z]+\))? )?mod (\w+);', txt):
            path_mods[(f,m.group(2))]=os.path.join(os.path.dirname(f), m.group(1))
    def resolve(f, name):
        # a child via #[path]
        if (f,name) in path_mods: return path_mods[(f,name)]
        # sibling file name.rs or name/mod.rs
        d=os.path.dirname(f)
        for cand in [os.path.join(d,name+'.rs'), os.path.join(d,name,'mod.rs')]:
            if os.path.exists(cand): return cand
        return None
    parent={}  # child file -> parent file (for #[path] children)
    for (pf,name),cf in path_mods.items(): parent[cf]=pf
    imports={f:set() for f in fs}
    for f in fs:
        txt=open(f).read()
        for m in re.finditer(r'^\s*(?:pub(?:\([a-z]+\))? )?use (\w+)::', txt, re.M):
            name=m.group(1)
            if name not in ('super','crate','std','self') and (f,name) in path_mods:
                imports[f].add(path_mods[(f,name)])
        for m in re.finditer(r'\buse (super|crate)::([\w:]+|\{)', txt):
            kind, rest = m.group(1), m.group(2)
            first = rest.split('::')[0] if rest!='{' else None
            if kind=='super':
                base = parent.get(f)
                if base is None:
                    # plain module: super = the crate root sibling dir
                    base_dir=os.path.dirname(f)
                    if first:
                        t=resolve(os.path.join(base_dir,'lib.rs'), first)
                        if t: imports[f].add(t)
                    continue
                if first and resolve(base, first):
                    imports[f].add(resolve(base, first))
                else:
                    imports[f].add(base)
            else:
                if first:
                    t=resolve(os.path.join(crate,'lib.rs'), first)
                    if t: imports[f].add(t)
    for a,b in itertools.combinations(fs,2):
        if b in imports[a] and a in imports[b]:
            pairs.append((a,b))
print("\n".join(f"{a} <-> {b}" for a,b in pairs) or "no file circles")
raise SystemExit(1 if pairs else 0)
