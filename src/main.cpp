#include "frontdoor/cli/cli.hpp"

int main(int argc, char** argv) { return frontdoor::cli::main(argc, argv); }
