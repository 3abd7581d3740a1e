// tests/main.cpp - Catch2 entry point. With v3, Catch2::Catch2WithMain supplies
// main() and this file compiles to nothing.
#define CATCH_CONFIG_MAIN
#include "catch.hpp"
