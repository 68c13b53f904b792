// strata-cli's commands, one function each (main in tools/strata_cli.cc picks one). `args` holds
// the program's words after flags are parsed: args[0] the program, args[1] the command; a
// function whose command names a collection is called only with args[2] present. Each returns
// the process's exit code (0, or 1 with a message on stderr).
#ifndef STRATA_TOOLS_CLI_COMMANDS_H_
#define STRATA_TOOLS_CLI_COMMANDS_H_

#include <memory>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "proto/strata.grpc.pb.h"

namespace strata::cli {

// A command: its name (args[1]), the words, the server.
using CommandFn = int (*)(const std::string& cmd, const std::vector<char*>& args,
                          v1::Strata::Stub* stub);

// The server's health (grpc.health.v1): exit code 0 only when SERVING.
int Health(const std::shared_ptr<grpc::Channel>& channel);

// Collections and their points (collection_commands.cc).
int List(const std::string& cmd, const std::vector<char*>& args, v1::Strata::Stub* stub);
int Stats(const std::string& cmd, const std::vector<char*>& args, v1::Strata::Stub* stub);
int Embed(const std::string& cmd, const std::vector<char*>& args, v1::Strata::Stub* stub);
int Create(const std::string& cmd, const std::vector<char*>& args, v1::Strata::Stub* stub);
int Tune(const std::string& cmd, const std::vector<char*>& args, v1::Strata::Stub* stub);
// describe, build and repair.
int DescribeOrBuild(const std::string& cmd, const std::vector<char*>& args, v1::Strata::Stub* stub);
int Drop(const std::string& cmd, const std::vector<char*>& args, v1::Strata::Stub* stub);
int Count(const std::string& cmd, const std::vector<char*>& args, v1::Strata::Stub* stub);
int GetOrDelete(const std::string& cmd, const std::vector<char*>& args, v1::Strata::Stub* stub);

// Tenants, their access and their keys (tenant_commands.cc).
int TenantCommand(const std::string& cmd, const std::vector<char*>& args, v1::Strata::Stub* stub);
int GrantOrRevoke(const std::string& cmd, const std::vector<char*>& args, v1::Strata::Stub* stub);
int KeyCommand(const std::string& cmd, const std::vector<char*>& args, v1::Strata::Stub* stub);

// Searches (search_command.cc) and answers (ask_command.cc).
int Search(const std::string& cmd, const std::vector<char*>& args, v1::Strata::Stub* stub);
int Ask(const std::string& cmd, const std::vector<char*>& args, v1::Strata::Stub* stub);

}  // namespace strata::cli

#endif  // STRATA_TOOLS_CLI_COMMANDS_H_
