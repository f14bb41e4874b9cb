// Independent readers of the writers' formats, shared by tests/unit/test_writers.cpp and
// tests/writers/make_reports.cpp: a strict JSON parser (RFC 8259, UTF-8 checked), a gunzip for
// stored deflate blocks with its own bitwise CRC-32, a profile.proto dumper, and the fixed
// reports the golden files are made from. Written apart from the header's code on purpose: a
// mistake shared by the writer and its reader would pass unseen.
#pragma once
#include <leakscope.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace checks {

// ---- JSON ---------------------------------------------------------------------------------------
struct Json {
    enum Type { null, boolean, number, string, array, object } type = null;
    bool flag = false;
    double value = 0;
    std::string text;
    std::vector<Json> items;
    std::vector<std::string> keys;   // an object's members in document order (two vectors:
    std::vector<Json> values;        // a pair<string, Json> would need Json complete here)
    const Json& operator[](const std::string& key) const {
        for (std::size_t i = 0; i < keys.size(); ++i)
            if (keys[i] == key) return values[i];
        throw std::runtime_error("no member " + key);
    }
    const Json& operator[](std::size_t i) const { return items.at(i); }
};

class JsonParser {
   public:
    explicit JsonParser(const std::string& s) : s_(s) {}
    // Throws std::runtime_error on anything RFC 8259 forbids (and on invalid UTF-8).
    Json document() {
        Json v = value();
        space();
        if (at_ != s_.size()) fail("trailing text");
        return v;
    }

   private:
    [[noreturn]] void fail(const char* what) const {
        throw std::runtime_error(std::string("JSON: ") + what + " at byte " + std::to_string(at_));
    }
    void space() {
        while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\t' || s_[at_] == '\n' || s_[at_] == '\r')) ++at_;
    }
    bool literal(const char* word) {
        std::size_t n = std::strlen(word);
        if (s_.compare(at_, n, word) != 0) return false;
        at_ += n;
        return true;
    }
    Json value() {
        space();
        if (at_ >= s_.size()) fail("unexpected end");
        Json v;
        char c = s_[at_];
        if (c == '{') {
            v.type = Json::object;
            ++at_;
            space();
            if (at_ < s_.size() && s_[at_] == '}') return ++at_, v;
            for (;;) {
                space();
                if (at_ >= s_.size() || s_[at_] != '"') fail("expected a key");
                std::string key = string();
                space();
                if (at_ >= s_.size() || s_[at_++] != ':') fail("expected ':'");
                v.keys.push_back(key);
                v.values.push_back(value());
                space();
                if (at_ < s_.size() && s_[at_] == ',') {
                    ++at_;
                    continue;
                }
                if (at_ < s_.size() && s_[at_] == '}') return ++at_, v;
                fail("expected ',' or '}'");
            }
        }
        if (c == '[') {
            v.type = Json::array;
            ++at_;
            space();
            if (at_ < s_.size() && s_[at_] == ']') return ++at_, v;
            for (;;) {
                v.items.push_back(value());
                space();
                if (at_ < s_.size() && s_[at_] == ',') {
                    ++at_;
                    continue;
                }
                if (at_ < s_.size() && s_[at_] == ']') return ++at_, v;
                fail("expected ',' or ']'");
            }
        }
        if (c == '"') {
            v.type = Json::string;
            v.text = string();
            return v;
        }
        if (literal("true")) return v.type = Json::boolean, v.flag = true, v;
        if (literal("false")) return v.type = Json::boolean, v;
        if (literal("null")) return v;
        std::size_t start = at_;
        if (s_[at_] == '-') ++at_;
        if (at_ < s_.size() && s_[at_] == '0')
            ++at_;
        else if (at_ < s_.size() && s_[at_] >= '1' && s_[at_] <= '9')
            while (at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9') ++at_;
        else
            fail("bad value");
        if (at_ < s_.size() && s_[at_] == '.') {
            ++at_;
            if (at_ >= s_.size() || s_[at_] < '0' || s_[at_] > '9') fail("bad fraction");
            while (at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9') ++at_;
        }
        if (at_ < s_.size() && (s_[at_] == 'e' || s_[at_] == 'E')) {
            ++at_;
            if (at_ < s_.size() && (s_[at_] == '+' || s_[at_] == '-')) ++at_;
            if (at_ >= s_.size() || s_[at_] < '0' || s_[at_] > '9') fail("bad exponent");
            while (at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9') ++at_;
        }
        v.type = Json::number;
        v.text = s_.substr(start, at_ - start);   // as written: counts past 2^53 are compared exactly
        v.value = std::strtod(v.text.c_str(), nullptr);   // (stod throws on an underflow to 0)
        return v;
    }
    static void put_utf8(std::string& out, std::uint32_t c) {
        if (c < 0x80) {
            out += char(c);
        } else if (c < 0x800) {
            out += char(0xC0 | c >> 6), out += char(0x80 | (c & 63));
        } else if (c < 0x10000) {
            out += char(0xE0 | c >> 12), out += char(0x80 | (c >> 6 & 63)), out += char(0x80 | (c & 63));
        } else {
            out += char(0xF0 | c >> 18), out += char(0x80 | (c >> 12 & 63)), out += char(0x80 | (c >> 6 & 63)),
                out += char(0x80 | (c & 63));
        }
    }
    std::uint32_t hex4() {
        if (at_ + 4 > s_.size()) fail("short \\u escape");
        std::uint32_t c = 0;
        for (int i = 0; i < 4; ++i) {
            char h = s_[at_++];
            c <<= 4;
            if (h >= '0' && h <= '9') c |= std::uint32_t(h - '0');
            else if (h >= 'a' && h <= 'f') c |= std::uint32_t(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') c |= std::uint32_t(h - 'A' + 10);
            else fail("bad hex digit");
        }
        return c;
    }
    std::string string() {
        ++at_;   // '"'
        std::string out;
        for (;;) {
            if (at_ >= s_.size()) fail("unterminated string");
            auto c = static_cast<unsigned char>(s_[at_]);
            if (c == '"') return ++at_, out;
            if (c < 0x20) fail("raw control character in a string");
            if (c == '\\') {
                ++at_;
                if (at_ >= s_.size()) fail("unterminated escape");
                char e = s_[at_++];
                switch (e) {
                    case '"': out += '"'; break;
                    case '\\': out += '\\'; break;
                    case '/': out += '/'; break;
                    case 'b': out += '\b'; break;
                    case 'f': out += '\f'; break;
                    case 'n': out += '\n'; break;
                    case 'r': out += '\r'; break;
                    case 't': out += '\t'; break;
                    case 'u': {
                        std::uint32_t u = hex4();
                        if (u >= 0xD800 && u <= 0xDBFF) {
                            if (s_.compare(at_, 2, "\\u") != 0) fail("lone high surrogate");
                            at_ += 2;
                            std::uint32_t low = hex4();
                            if (low < 0xDC00 || low > 0xDFFF) fail("bad low surrogate");
                            u = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
                        } else if (u >= 0xDC00 && u <= 0xDFFF) {
                            fail("lone low surrogate");
                        }
                        put_utf8(out, u);
                        break;
                    }
                    default: fail("bad escape");
                }
                continue;
            }
            std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
            if (n == 0 || at_ + n > s_.size()) fail("invalid UTF-8");
            std::uint32_t code = n == 1 ? c : c & (0x7F >> n);
            for (std::size_t i = 1; i < n; ++i) {
                auto k = static_cast<unsigned char>(s_[at_ + i]);
                if ((k & 0xC0) != 0x80) fail("invalid UTF-8");
                code = code << 6 | (k & 63);
            }
            static const std::uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
            if (code < least[n] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) fail("invalid UTF-8");
            out.append(s_, at_, n);
            at_ += n;
        }
    }
    const std::string& s_;
    std::size_t at_ = 0;
};

inline Json parse_json(const std::string& s) { return JsonParser(s).document(); }

// True if `s` is well-formed UTF-8 (the same rules as the JSON parser's).
inline bool valid_utf8(const std::string& s) {
    Json j;
    try {
        std::string quoted = "\"";
        for (char c : s) {
            if (c == '"' || c == '\\') quoted += '\\';
            quoted += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
        }
        parse_json(quoted + "\"");
        return true;
    } catch (const std::runtime_error&) {
        return false;
    }
}

// ---- gzip ---------------------------------------------------------------------------------------
inline std::uint32_t bitwise_crc32(const std::string& data) {
    std::uint32_t crc = 0xFFFFFFFFu;
    for (unsigned char c : data) {
        crc ^= c;
        for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

// Unwraps a gzip member made of stored deflate blocks; checks the header, every LEN/NLEN pair,
// the CRC-32 and the length. Throws on any mismatch.
inline std::string gunzip_stored(const std::string& gz) {
    auto byte = [&](std::size_t i) -> unsigned {
        if (i >= gz.size()) throw std::runtime_error("gzip: truncated");
        return static_cast<unsigned char>(gz[i]);
    };
    if (byte(0) != 0x1f || byte(1) != 0x8b || byte(2) != 8) throw std::runtime_error("gzip: bad magic");
    if (byte(3) != 0) throw std::runtime_error("gzip: unexpected flags");
    std::size_t at = 10;
    std::string out;
    for (bool final = false; !final;) {
        unsigned head = byte(at++);
        final = head & 1;
        if (((head >> 1) & 3) != 0) throw std::runtime_error("gzip: not a stored block");
        unsigned len = byte(at) | byte(at + 1) << 8, nlen = byte(at + 2) | byte(at + 3) << 8;
        if ((len ^ 0xFFFFu) != nlen) throw std::runtime_error("gzip: LEN/NLEN mismatch");
        at += 4;
        if (at + len > gz.size()) throw std::runtime_error("gzip: truncated block");
        out.append(gz, at, len);
        at += len;
    }
    auto le32 = [&](std::size_t i) { return std::uint32_t(byte(i) | byte(i + 1) << 8 | byte(i + 2) << 16 | byte(i + 3) << 24); };
    if (le32(at) != bitwise_crc32(out)) throw std::runtime_error("gzip: CRC-32 mismatch");
    if (le32(at + 4) != std::uint32_t(out.size())) throw std::runtime_error("gzip: ISIZE mismatch");
    if (at + 8 != gz.size()) throw std::runtime_error("gzip: trailing bytes");
    return out;
}

// ---- profile.proto ------------------------------------------------------------------------------
// A text dump of a Profile message, one top-level field per line, with profile.proto's names.
// Unknown fields and malformed wire data throw.
class ProtoDumper {
   public:
    std::string dump(const std::string& bytes) {
        std::string out;
        message(bytes, "Profile", out, true);
        return out;
    }
    std::size_t count(const std::string& bytes, unsigned field) {   // top-level fields of a number
        std::size_t at = 0, n = 0;
        while (at < bytes.size()) {
            std::uint64_t key = varint(bytes, at);
            if ((key >> 3) == field) ++n;
            skip(bytes, at, unsigned(key & 7));
        }
        return n;
    }

   private:
    struct Field {
        const char* name;
        const char* type;   // "u" number, "packed", "str" bytes as text, or a message name
    };
    static const Field* field(const std::string& message, unsigned number) {
        static const std::map<std::string, std::map<unsigned, Field>> schema = {
            {"Profile",
             {{1, {"sample_type", "ValueType"}}, {2, {"sample", "Sample"}}, {3, {"mapping", "Mapping"}},
              {4, {"location", "Location"}}, {5, {"function", "Function"}}, {6, {"string_table", "str"}},
              {7, {"drop_frames", "u"}}, {8, {"keep_frames", "u"}}, {9, {"time_nanos", "u"}},
              {10, {"duration_nanos", "u"}}, {11, {"period_type", "ValueType"}}, {12, {"period", "u"}},
              {13, {"comment", "packed"}}, {14, {"default_sample_type", "u"}}}},
            {"ValueType", {{1, {"type", "u"}}, {2, {"unit", "u"}}}},
            {"Sample", {{1, {"location_id", "packed"}}, {2, {"value", "packed"}}, {3, {"label", "Label"}}}},
            {"Label", {{1, {"key", "u"}}, {2, {"str", "u"}}, {3, {"num", "u"}}, {4, {"num_unit", "u"}}}},
            {"Mapping",
             {{1, {"id", "u"}}, {2, {"memory_start", "u"}}, {3, {"memory_limit", "u"}}, {4, {"file_offset", "u"}},
              {5, {"filename", "u"}}, {6, {"build_id", "u"}}, {7, {"has_functions", "u"}},
              {8, {"has_filenames", "u"}}, {9, {"has_line_numbers", "u"}}, {10, {"has_inline_frames", "u"}}}},
            {"Location",
             {{1, {"id", "u"}}, {2, {"mapping_id", "u"}}, {3, {"address", "u"}}, {4, {"line", "Line"}},
              {5, {"is_folded", "u"}}}},
            {"Line", {{1, {"function_id", "u"}}, {2, {"line", "u"}}}},
            {"Function",
             {{1, {"id", "u"}}, {2, {"name", "u"}}, {3, {"system_name", "u"}}, {4, {"filename", "u"}},
              {5, {"start_line", "u"}}}},
        };
        auto m = schema.find(message);
        if (m == schema.end()) return nullptr;
        auto f = m->second.find(number);
        return f == m->second.end() ? nullptr : &f->second;
    }
    static std::uint64_t varint(const std::string& b, std::size_t& at) {
        std::uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (at >= b.size()) throw std::runtime_error("proto: truncated varint");
            auto c = static_cast<unsigned char>(b[at++]);
            v |= std::uint64_t(c & 0x7F) << shift;
            if (!(c & 0x80)) return v;
        }
        throw std::runtime_error("proto: varint too long");
    }
    static std::string bytes_of(const std::string& b, std::size_t& at) {
        std::uint64_t n = varint(b, at);
        if (n > b.size() - at) throw std::runtime_error("proto: truncated field");
        std::string out = b.substr(at, std::size_t(n));
        at += std::size_t(n);
        return out;
    }
    static void skip(const std::string& b, std::size_t& at, unsigned wire) {
        if (wire == 0) varint(b, at);
        else if (wire == 2) bytes_of(b, at);
        else throw std::runtime_error("proto: unexpected wire type");
    }
    static std::string quoted(const std::string& s) {
        std::string out = "\"";
        for (unsigned char c : s) {
            if (c == '"' || c == '\\') out += '\\', out += char(c);
            else if (c < 0x20 || c >= 0x7F) {
                char hex[8];
                std::snprintf(hex, sizeof hex, "\\x%02x", c);
                out += hex;
            } else out += char(c);
        }
        return out + "\"";
    }
    void message(const std::string& b, const std::string& type, std::string& out, bool top) {
        std::size_t at = 0;
        bool first = true;
        while (at < b.size()) {
            std::uint64_t key = varint(b, at);
            unsigned number = unsigned(key >> 3), wire = unsigned(key & 7);
            const Field* f = field(type, number);
            if (!f) throw std::runtime_error("proto: unknown field " + std::to_string(number) + " in " + type);
            if (!top && !first) out += ' ';
            first = false;
            out += f->name;
            std::string t = f->type;
            if (t == "u") {
                if (wire != 0) throw std::runtime_error("proto: number field not a varint");
                out += ": " + std::to_string(varint(b, at));
            } else if (wire != 2) {
                throw std::runtime_error("proto: expected length-delimited");
            } else if (t == "packed") {
                std::string p = bytes_of(b, at);
                std::size_t k = 0;
                out += ": [";
                for (bool one = true; k < p.size(); one = false) out += (one ? "" : " ") + std::to_string(varint(p, k));
                out += "]";
            } else if (t == "str") {
                out += ": " + quoted(bytes_of(b, at));
            } else {
                out += " { ";
                message(bytes_of(b, at), t, out, false);
                out += " }";
            }
            if (top) out += '\n';
        }
    }
};

// ---- reports ------------------------------------------------------------------------------------
inline leakscope::Frame frame(std::uintptr_t address, const char* function, const char* file, unsigned line,
                              const char* module = "/build/app", bool inlined = false) {
    leakscope::Frame f;
    f.address = address;
    f.function = function;
    f.file = file;
    f.line = line;
    f.module = module;
    f.inlined = inlined;
    f.offset = address;   // as in a non-PIE executable, loaded at its file addresses
    return f;
}
// A frame known only by its module: `address` at `offset` into the module's file.
inline leakscope::Frame module_frame(std::uintptr_t address, std::uintptr_t offset, const char* module) {
    leakscope::Frame f = frame(address, "", "", 0, module);
    f.offset = offset;
    return f;
}

// The report of the golden files: three sites (one with an inlined frame, one with a frame known
// only by module and address, one with a name full of bad bytes), allocator frames, a suppressed
// rule. Addresses lie where no module is loaded (below 64 KiB), so no real mapping shows up.
inline leakscope::Report golden_report() {
    using leakscope::Site;
    leakscope::Report r;
    r.kind = "leftovers";
    r.scope = "GET /page";
    r.file = "/src/server.cpp";
    r.line = 42;
    r.by_exception = true;
    r.released_blocks = 1;
    r.released_bytes = 24;
    Site a;
    a.type = "std::string";
    a.blocks = 3;
    a.bytes = 120;
    a.allocator_frames = {frame(0x1100, "operator new(unsigned long)", "", 0, "/usr/lib/libstdc++.so.6"),
                          frame(0x1140, "std::__cxx11::basic_string<char>::_M_create(unsigned long&, unsigned long)",
                                "/usr/include/c++/12/bits/basic_string.tcc", 140)};
    a.frames = {frame(0x2010, "render_page(Request const&)", "/src/render.cpp", 17, "/build/app", true),
                frame(0x2010, "handle(Request const&, Response&)", "/src/server.cpp", 22),
                frame(0x2210, "main", "/src/server.cpp", 35)};
    Site b;
    b.type = "Session";
    b.blocks = 1;
    b.bytes = 64;
    b.frames = {frame(0x3020, "Cache::fill(std::map<int, std::string>&)", "/src/cache.cpp", 9),
                module_frame(0x3400, 0x1400, "/build/libplugin.so"),
                frame(0x2210, "main", "/src/server.cpp", 35)};
    Site c;
    c.blocks = 2;
    c.bytes = 16;
    c.frames = {frame(0x4030, "weird \"quoted\" back\\slash\ttab;semi\x01\x7f bad\xff\xc0\x80 \xed\xa0\x80 caf\xc3\xa9 \xf0\x9f\x98\x80",
                      "/src/dir with space/w\"e;ird.cpp", 7),
                frame(0x2210, "main", "/src/server.cpp", 35)};
    r.sites = {a, b, c};
    r.blocks = 6;
    r.bytes = 200;
    leakscope::Suppression s;
    s.rule = "leak:Cache::warm";
    s.blocks = 4;
    s.bytes = 4096;
    r.suppressed = {s};
    return r;
}

inline leakscope::Site site(std::size_t blocks, std::size_t bytes, const char* type, std::vector<leakscope::Frame> frames,
                            bool growing = false, std::size_t samples = 0) {
    leakscope::Site s;
    s.blocks = blocks;
    s.bytes = bytes;
    s.type = type;
    s.frames = std::move(frames);
    s.growing = growing;
    s.samples = samples;
    return s;
}

// A monitor's interval (kind "monitor"): four sites born since the baseline, largest first, two
// of them growing (the smaller ones: the writers list them first), one with a name full of bad
// bytes and one without a stack; seven released sites, deliberately not in size order (the
// writers find the largest), one allocated in a file with a long path.
inline leakscope::Report monitor_report() {
    leakscope::Report r;
    r.kind = "monitor";
    r.interval = 12;
    r.growth_intervals = 3;
    r.rss_bytes = 92483584;   // 88.2 MiB
    const char* weird = "weird \"quoted\" back\\slash\ttab;semi\x01\x7f bad\xff\xc0\x80 caf\xc3\xa9";
    r.sites = {site(3, 2400000, "std::string",
                    {frame(0x2010, "render_page(Request const&)", "/src/render.cpp", 17, "/build/app", true),
                     frame(0x2010, "handle(Request const&, Response&)", "/src/server.cpp", 22),
                     frame(0x2210, "main", "/src/server.cpp", 35)}),
               site(1200, 614400, "Session",
                    {frame(0x3020, "Cache::fill(std::map<int, std::string>&)", "/src/cache.cpp", 9),
                     frame(0x2210, "main", "/src/server.cpp", 35)},
                    true),
               site(2, 16, "", {frame(0x4030, weird, "/src/w\"e;ird.cpp", 7), frame(0x2210, "main", "/src/server.cpp", 35)},
                    true),
               site(1, 8, "", {})};
    r.blocks = 1206;
    r.bytes = 3014424;
    const char* long_path = "/home/builder/src/server/third_party/logging/implementation/rotating/log.cpp";
    r.released_sites = {site(300, 153600, "Session", {frame(0x3080, "Cache::evict(unsigned long)", "/src/cache.cpp", 40)}),
                        site(6, 1048576, "char", {frame(0x5010, "Log::rotate()", long_path, 88)}),
                        site(40, 1280, "", {frame(0x5100, "Parser::token()", "/src/parse.cpp", 61)}),
                        site(2, 64, "", {frame(0x5200, weird, "/src/w\"e;ird.cpp", 9)}),
                        site(9, 72000, "Buffer", {frame(0x5300, "Net::read()", "/src/net.cpp", 120)}),
                        site(1, 24, "", {}),
                        site(5, 640, "Node", {frame(0x5400, "Tree::erase(int)", "/src/tree.cpp", 77)})};
    r.released_blocks = 363;
    r.released_bytes = 1276184;
    return r;
}

// The live heap, sampled (kind "heap"): one block per 512 KiB on average, so blocks and bytes are
// estimates from the sampled blocks behind each site; the bytes' relative standard error 3.1%.
inline leakscope::Report sampled_heap_report() {
    leakscope::Report r;
    r.kind = "heap";
    r.scope = "live heap";
    r.rss_bytes = 47815065;   // 45.6 MiB
    r.sample_bytes = 524288;
    r.error = 0.031;
    r.sites = {site(9000, 4718592, "Node",
                    {frame(0x6010, "Tree::insert(int)", "/src/tree.cpp", 31), frame(0x2210, "main", "/src/server.cpp", 35)},
                    false, 9),
               site(1800, 1048576, "std::string",
                    {frame(0x2010, "render_page(Request const&)", "/src/render.cpp", 17, "/build/app", true),
                     frame(0x2010, "handle(Request const&, Response&)", "/src/server.cpp", 22),
                     frame(0x2210, "main", "/src/server.cpp", 35)},
                    false, 2),
               site(1, 524288, "", {module_frame(0x7000, 0x2000, "/build/libplugin.so")}, false, 1)};
    r.blocks = 10801;
    r.bytes = 6291456;
    return r;
}

// The monitor report with every count near SIZE_MAX (sums of them would wrap, casts of their
// ratios overflow), a site larger than the report's total, and a NaN error: bad input that must
// still give valid output.
inline leakscope::Report huge_report() {
    leakscope::Report r = monitor_report();
    const std::size_t most = SIZE_MAX;
    r.blocks = r.bytes = r.released_blocks = r.released_bytes = r.rss_bytes = r.sample_bytes = most;
    r.interval = r.growth_intervals = ~0u;
    r.error = __builtin_nan("");
    for (auto* sites : {&r.sites, &r.released_sites})
        for (leakscope::Site& s : *sites) s.blocks = s.bytes = s.samples = most;
    r.sites[0].bytes = 1;
    r.bytes = 1;
    return r;
}

// `n` distinct sites of 5 frames each, largest first (for the 100k-site checks and benchmark).
inline leakscope::Report many_sites_report(std::size_t n) {
    leakscope::Report r;
    r.kind = "leftovers";
    r.scope = "many";
    r.file = "/src/many.cpp";
    r.line = 1;
    r.sites.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        leakscope::Site& s = r.sites[i];
        s.blocks = 1 + i % 3;
        s.bytes = 32 * (n - i);
        s.type = i % 2 ? "Node" : "";
        std::string leaf = "leaf_" + std::to_string(i) + "(int)";
        std::string middle = "middle_" + std::to_string(i % 1000) + "()";
        std::uintptr_t base = 0x1000 + 16 * i;
        s.frames = {frame(base, leaf.c_str(), "/src/leaves.cpp", unsigned(i % 5000 + 1)),
                    frame(base + 4, middle.c_str(), "/src/middle.cpp", unsigned(i % 1000 + 1)),
                    frame(0x900, "worker()", "/src/worker.cpp", 40), frame(0x800, "run()", "/src/run.cpp", 12),
                    frame(0x700, "main", "/src/main.cpp", 5)};
        r.blocks += s.blocks;
        r.bytes += s.bytes;
    }
    return r;
}

}  // namespace checks
