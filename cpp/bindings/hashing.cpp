// Bindings of the string hashes (Keras's Hashing layer): a list of bytes to hash buckets.
#include <cstdint>
#include <limits>
#include <utility>

#include "checks.h"
#include "hashing.h"

using namespace fastdl::bindings;

namespace {

// The SipHash key from Keras's salt pair, or ValueError/TypeError.
std::uint64_t key_part(const py::handle& v, const char* fn) {
    if (!py::isinstance<py::int_>(v) || py::isinstance<py::bool_>(v))
        throw py::type_error(fastdl::concat(fn, ": key must hold two integers, received ",
                                            describe(v)));
    const auto big = py::int_(py::reinterpret_borrow<py::object>(v));
    const bool negative = big < py::int_(0);
    const bool too_big = big > py::int_(std::numeric_limits<std::uint64_t>::max());
    FASTDL_CHECK(!negative && !too_big, fn, ": key values must be in [0, 2**64), received ",
                 std::string(py::str(v)));
    return big.cast<std::uint64_t>();
}

// The length of a list that holds only bytes, or TypeError naming the first other item.
py::ssize_t check_bytes(const py::list& items, const char* fn) {
    const auto n = static_cast<py::ssize_t>(items.size());
    for (py::ssize_t i = 0; i < n; ++i)
        if (!PyBytes_Check(items[i].ptr()))
            throw py::type_error(fastdl::concat(fn, ": items must be bytes, item ", i, " is ",
                                                describe(items[i])));
    return n;
}

// The bytes of a checked item.
std::pair<const unsigned char*, std::size_t> bytes_of(const py::handle& item) {
    char* data = nullptr;
    Py_ssize_t size = 0;
    PyBytes_AsStringAndSize(item.ptr(), &data, &size);
    return {reinterpret_cast<const unsigned char*>(data), static_cast<std::size_t>(size)};
}

// hash(items[i]) % num_bins as int64, with FarmHash Fingerprint64 (key None) or SipHash-2-4
// under key (k0, k1): TensorFlow's to_hash_bucket_fast / to_hash_bucket_strong.
py::array_t<std::int64_t> hash_buckets(const py::list& items, std::int64_t num_bins,
                                       const py::object& key) {
    const char* fn = "hash_buckets";
    FASTDL_CHECK(num_bins >= 1, fn, ": num_bins must be a positive integer, received ", num_bins);
    bool keyed = !key.is_none();
    std::uint64_t k0 = 0, k1 = 0;
    if (keyed) {
        FASTDL_CHECK(py::isinstance<py::tuple>(key) || py::isinstance<py::list>(key), fn,
                     ": key must be None or a pair of integers, received ", describe(key));
        const auto pair = py::reinterpret_borrow<py::sequence>(key);
        FASTDL_CHECK(pair.size() == 2, fn, ": key must be a pair of integers, received ",
                     pair.size(), " values");
        k0 = key_part(pair[0], fn);
        k1 = key_part(pair[1], fn);
    }
    const auto n = check_bytes(items, fn);
    py::array_t<std::int64_t> out(n);
    auto* o = out.mutable_data();
    const auto bins = static_cast<std::uint64_t>(num_bins);
    for (py::ssize_t i = 0; i < n; ++i) {
        const auto [s, len] = bytes_of(items[i]);
        const std::uint64_t h = keyed ? fastdl::siphash24(k0, k1, s, len)
                                      : fastdl::fingerprint64(s, len);
        o[i] = static_cast<std::int64_t>(h % bins);
    }
    return out;
}

// The full 64-bit FarmHash Fingerprint64 of each item (what HashedCrossing combines).
py::array_t<std::uint64_t> fingerprint64(const py::list& items) {
    const auto n = check_bytes(items, "fingerprint64");
    py::array_t<std::uint64_t> out(n);
    auto* o = out.mutable_data();
    for (py::ssize_t i = 0; i < n; ++i) {
        const auto [s, len] = bytes_of(items[i]);
        o[i] = fastdl::fingerprint64(s, len);
    }
    return out;
}

}  // namespace

void bind_hashing(py::module_& m) {
    m.def("hash_buckets", &hash_buckets, py::arg("items"), py::arg("num_bins"),
          py::arg("key") = py::none(),
          "hash(item) % num_bins (int64) for a list of bytes: FarmHash Fingerprint64, or "
          "SipHash-2-4 under key=(k0, k1). Keras's Hashing layer.");
    m.def("fingerprint64", &fingerprint64, py::arg("items"),
          "FarmHash Fingerprint64 (uint64) of each item of a list of bytes. Keras's "
          "HashedCrossing.");
}
