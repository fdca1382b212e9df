#pragma once
// The command line: `frontdoor run|check|proxy|--version`. Exceptions stop here.
namespace frontdoor::cli {

int main(int argc, char** argv);

}  // namespace frontdoor::cli
