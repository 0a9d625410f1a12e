//! The syntax tree of a script: statements, command arguments and expressions.

use super::value::Val;

#[derive(Debug, Clone)]
pub(super) enum Target {
    Var(String),
    Env(String),
}

#[derive(Debug, Clone)]
pub(super) enum Part {
    Text(String),
    Expr(Expr),
}

#[derive(Debug, Clone)]
pub(super) enum Expr {
    Lit(Val),
    Var(String),
    Env(String),
    Expand(Vec<Part>),
    Array(Vec<Expr>),
    Sub(Box<Expr>),
    Not(Box<Expr>),
    Bin(String, Box<Expr>, Box<Expr>),
    /// A command whose output is a value: `(Test-Path x)`, `$(git rev-parse HEAD)`.
    Cmd(String, Vec<Arg>),
    /// `$x.Length`, `$s.Split(',')`: a member or method of the .NET value.
    Member(Box<Expr>, String, Option<Vec<Expr>>),
    /// `$a[0]`.
    Index(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone)]
pub(super) enum Arg {
    Param(String),
    Value(Expr),
}

#[derive(Debug, Clone)]
pub(super) enum Stmt {
    Assign(Target, Expr),
    If(Vec<(Expr, Vec<Stmt>)>, Option<Vec<Stmt>>),
    Foreach(String, Expr, Vec<Stmt>),
    Exit(Option<Expr>),
    Throw(Option<Expr>),
    Expr(Expr),
    Command(String, Vec<Arg>),
    /// `... | Out-Null`: the statement's output is discarded (Write-Host still prints).
    Quiet(Box<Stmt>),
}
