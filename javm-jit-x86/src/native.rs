//! Disassembly of the machine code emitted for each PVM instruction (iced-x86,
//! Intel syntax), for `javm disasm --native` and the golden tests.

use std::fmt::Write;

use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
use javm_exec::disasm;

use crate::module::JitModule;

/// One line per x86 instruction, grouped under the PVM instruction that emitted it,
/// then the cold stubs. Addresses are offsets into the module's code, so the listing
/// is stable.
pub fn listing(module: &JitModule) -> String {
    let program = module.program();
    let mut out = String::new();
    let mut fmt = IntelFormatter::new();
    fmt.options_mut().set_hex_prefix("0x");
    fmt.options_mut().set_hex_suffix("");
    fmt.options_mut().set_uppercase_hex(false);
    fmt.options_mut().set_first_operand_char_index(8);
    let base = module.code.start() as u64;
    for (i, &pc) in program.pcs().iter().enumerate() {
        let text = if pc as usize >= program.code().len() {
            "trap                                    ; implicit, end of code".to_string()
        } else {
            let d = program.view().decode(pc);
            match d.opcode {
                Some(op) => disasm::format_instruction(op, &d.args),
                None => "invalid".to_string(),
            }
        };
        let _ = i;
        let _ = writeln!(out, "{pc:>6}: {text}");
        let Some((addr, bytes)) = module.native_code_of(i) else {
            continue;
        };
        decode_into(&mut out, &mut fmt, bytes, addr - base);
    }
    let (addr, bytes) = module.cold_code();
    let _ = writeln!(out, "  cold:");
    decode_into(&mut out, &mut fmt, bytes, addr - base);
    out
}

fn decode_into(out: &mut String, fmt: &mut IntelFormatter, bytes: &[u8], ip: u64) {
    let mut decoder = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
    let mut line = String::new();
    while decoder.can_decode() {
        let ins = decoder.decode();
        line.clear();
        fmt.format(&ins, &mut line);
        let _ = writeln!(out, "        {:06x}  {line}", ins.ip());
    }
}
