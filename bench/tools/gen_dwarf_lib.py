#!/usr/bin/env python3
"""Generates and builds a shared library with a lot of DWARF, for bench/symbolize.cpp.

    python3 bench/tools/gen_dwarf_lib.py OUT_DIR [--units 4] [--functions 46] [--jobs 2] [--cxx c++]
    LEAKSCOPE_BENCH_DWARF_LIB=OUT_DIR/libbigdwarf.so build/bench/bench/bench_symbolize

Each unit holds `--functions` non-inlined functions, each instantiating standard containers over
a type of its own at -O2 -g, so that every one carries deep inlining chains (what the symbolizer
must expand) and its own type DIEs. The defaults (184 functions) give about 50 MB of .debug_*
sections and build in one to two minutes on 2 cores. The library exports
`bench_function_count()` and `bench_function(i)`, the i-th function's address; each function
`void* f(int n)` returns a vector it leaves allocated (4 blocks for n = 1). Not part of CI.
"""
import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

UNIT_HEAD = """#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>
namespace u{u} {{
"""

FUNCTION = """struct T{f} {{ long id; std::string name; std::vector<int> values; }};
__attribute__((noinline)) void* f{f}(int n) {{
    std::map<int, T{f}> by_id;
    std::unordered_map<std::string, std::shared_ptr<T{f}>> by_name;
    for (int i = 0; i < n; ++i) {{
        T{f}& t = by_id[i * {f} + 1];
        t.id = i;
        t.name.append(std::size_t(i % 7 + 20), char('a' + {f} % 26));
        t.values.push_back(i);
        by_name.emplace(t.name, std::make_shared<T{f}>(t));
    }}
    auto* out = new std::vector<T{f}>();
    for (auto& kv : by_id) out->push_back(kv.second);
    return out->empty() ? nullptr : out;
}}
"""

UNIT_TAIL = """}}  // namespace u{u}
extern "C" const void* const u{u}_table[] = {{ {entries} }};
"""

MAIN = """#include <cstddef>
{decls}
static const void* const* const tables[] = {{ {tables} }};
extern "C" __attribute__((visibility("default"))) const void* bench_function(std::size_t i) {{
    std::size_t per = {per};
    if (i >= per * {units}) return nullptr;
    return tables[i / per][i % per];
}}
extern "C" __attribute__((visibility("default"))) std::size_t bench_function_count() {{ return {per} * {units}; }}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--units", type=int, default=4)
    ap.add_argument("--functions", type=int, default=46)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cxx", default=os.environ.get("CXX", "c++"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    sources = []
    for u in range(a.units):
        text = UNIT_HEAD.format(u=u)
        for k in range(a.functions):
            text += FUNCTION.format(f=u * a.functions + k)
        entries = ", ".join("reinterpret_cast<const void*>(&u%d::f%d)" % (u, u * a.functions + k) for k in range(a.functions))
        text += UNIT_TAIL.format(u=u, entries=entries)
        path = os.path.join(a.out, "unit%d.cpp" % u)
        with open(path, "w") as f:
            f.write(text)
        sources.append(path)
    decls = "\n".join('extern "C" const void* const u%d_table[];' % u for u in range(a.units))
    tables = ", ".join("u%d_table" % u for u in range(a.units))
    main_path = os.path.join(a.out, "main.cpp")
    with open(main_path, "w") as f:
        f.write(MAIN.format(decls=decls, tables=tables, per=a.functions, units=a.units))
    sources.append(main_path)
    flags = ["-std=c++17", "-O2", "-g", "-fPIC", "-fvisibility=hidden"]

    def compile_one(src):
        obj = src[:-4] + ".o"
        if os.path.exists(obj) and os.path.getmtime(obj) > os.path.getmtime(src):
            return obj
        subprocess.run([a.cxx] + flags + ["-c", src, "-o", obj], check=True)
        print("  built", os.path.basename(obj), flush=True)
        return obj

    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        objects = list(pool.map(compile_one, sources))
    lib = os.path.join(a.out, "libbigdwarf.so")
    subprocess.run([a.cxx, "-shared", "-o", lib] + objects, check=True)
    out = subprocess.run(["readelf", "-S", "-W", lib], check=True, capture_output=True, text=True).stdout
    debug = 0
    for line in out.splitlines():
        parts = line.replace("[ ", "[").split()
        if len(parts) > 6 and parts[1].startswith(".debug_"):
            debug += int(parts[5], 16)
    print("%s: %.1f MB of .debug_* sections, %d functions" % (lib, debug / 1e6, a.units * a.functions))


if __name__ == "__main__":
    sys.exit(main())
