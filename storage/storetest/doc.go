// Package storetest is the contract test suite of the stores that package dispatch
// declares. Every implementation must pass Run; storage runs it against Badger.
package storetest
