// memdiag/detail/internal_vector.hpp - a std::vector on memdiag's internal
// allocator. Apart from internal_alloc.hpp so that the headers every user
// includes do not pay for <vector>.
#pragma once

#include <vector>

#include "internal_alloc.hpp"

namespace memdiag {
namespace detail {

/// A vector whose buffer never touches the observed heap.
template <class T>
using internal_vector = std::vector<T, internal_allocator<T>>;

}  // namespace detail
}  // namespace memdiag
