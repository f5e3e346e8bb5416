//! `hera run`'s knob flags, one per field of the schema (`--probe-interval 2s`), built from the
//! schema itself so that a new knob gets its flag, its help line and its range by being listed
//! there. The values are read and checked by `Settings::resolve`, like the file's.

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use crate::runtime::settings::Knob;

/// The knob flags given: (flag without `--`, text), in the order clap reports them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KnobFlags {
    pub values: Vec<(String, String)>,
}

impl FromArgMatches for KnobFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut values = Vec::new();
        for flag in Knob::all().filter_map(|k| k.meta().flag) {
            if let Some(text) = matches.get_one::<String>(flag) {
                values.push((flag.to_string(), text.clone()));
            }
        }
        Ok(KnobFlags { values })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = KnobFlags::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for KnobFlags {
    fn augment_args(mut command: Command) -> Command {
        for knob in Knob::all() {
            let meta = knob.meta();
            let Some(flag) = meta.flag else {
                continue;
            };
            command = command.arg(
                Arg::new(flag)
                    .long(flag)
                    .value_name("VALUE")
                    .action(ArgAction::Set)
                    .help(format!("{} [{}]", meta.why, meta.range()))
                    .help_heading("Protocol and runtime knobs (override the file)"),
            );
        }
        command
    }

    fn augment_args_for_update(command: Command) -> Command {
        KnobFlags::augment_args(command)
    }
}
