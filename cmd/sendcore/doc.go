// Command sendcore is the messaging gateway: run, demo, bench, segment, optout, version
// (contract §4). main stays thin: flags and subcommands, then package gateway.
package main
