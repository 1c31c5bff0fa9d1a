//! `Rv`: the one error type of the module's inner API, a Rust enum of the
//! CK_RV codes the module returns. The C boundary turns it into a CK_RV.

use pkcs11_sys as ck;

macro_rules! rv_codes {
    ($($variant:ident = $code:ident,)*) => {
        /// A CK_RV other than CKR_OK.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Rv { $($variant,)* }

        impl Rv {
            /// The CK_RV value of this error.
            pub fn code(self) -> ck::CK_RV {
                match self { $(Rv::$variant => ck::$code,)* }
            }
        }
    };
}

rv_codes! {
    ActionProhibited = CKR_ACTION_PROHIBITED,
    AeadDecryptFailed = CKR_AEAD_DECRYPT_FAILED,
    ArgumentsBad = CKR_ARGUMENTS_BAD,
    AttributeReadOnly = CKR_ATTRIBUTE_READ_ONLY,
    AttributeSensitive = CKR_ATTRIBUTE_SENSITIVE,
    AttributeTypeInvalid = CKR_ATTRIBUTE_TYPE_INVALID,
    AttributeValueInvalid = CKR_ATTRIBUTE_VALUE_INVALID,
    BufferTooSmall = CKR_BUFFER_TOO_SMALL,
    CantLock = CKR_CANT_LOCK,
    CryptokiAlreadyInitialized = CKR_CRYPTOKI_ALREADY_INITIALIZED,
    CryptokiNotInitialized = CKR_CRYPTOKI_NOT_INITIALIZED,
    CurveNotSupported = CKR_CURVE_NOT_SUPPORTED,
    DataInvalid = CKR_DATA_INVALID,
    DataLenRange = CKR_DATA_LEN_RANGE,
    DeviceError = CKR_DEVICE_ERROR,
    DomainParamsInvalid = CKR_DOMAIN_PARAMS_INVALID,
    DeviceMemory = CKR_DEVICE_MEMORY,
    EncryptedDataInvalid = CKR_ENCRYPTED_DATA_INVALID,
    EncryptedDataLenRange = CKR_ENCRYPTED_DATA_LEN_RANGE,
    FunctionFailed = CKR_FUNCTION_FAILED,
    FunctionNotParallel = CKR_FUNCTION_NOT_PARALLEL,
    FunctionNotSupported = CKR_FUNCTION_NOT_SUPPORTED,
    GeneralError = CKR_GENERAL_ERROR,
    HostMemory = CKR_HOST_MEMORY,
    KeyExhausted = CKR_KEY_EXHAUSTED,
    KeyFunctionNotPermitted = CKR_KEY_FUNCTION_NOT_PERMITTED,
    KeyHandleInvalid = CKR_KEY_HANDLE_INVALID,
    KeySizeRange = CKR_KEY_SIZE_RANGE,
    KeyTypeInconsistent = CKR_KEY_TYPE_INCONSISTENT,
    KeyUnextractable = CKR_KEY_UNEXTRACTABLE,
    KeyIndigestible = CKR_KEY_INDIGESTIBLE,
    KeyNotWrappable = CKR_KEY_NOT_WRAPPABLE,
    MechanismInvalid = CKR_MECHANISM_INVALID,
    MechanismParamInvalid = CKR_MECHANISM_PARAM_INVALID,
    NoEvent = CKR_NO_EVENT,
    ObjectHandleInvalid = CKR_OBJECT_HANDLE_INVALID,
    OperationActive = CKR_OPERATION_ACTIVE,
    OperationNotInitialized = CKR_OPERATION_NOT_INITIALIZED,
    PinIncorrect = CKR_PIN_INCORRECT,
    PinLocked = CKR_PIN_LOCKED,
    PinInvalid = CKR_PIN_INVALID,
    PinLenRange = CKR_PIN_LEN_RANGE,
    SignatureInvalid = CKR_SIGNATURE_INVALID,
    SignatureLenRange = CKR_SIGNATURE_LEN_RANGE,
    SessionExists = CKR_SESSION_EXISTS,
    SessionHandleInvalid = CKR_SESSION_HANDLE_INVALID,
    SessionParallelNotSupported = CKR_SESSION_PARALLEL_NOT_SUPPORTED,
    SessionReadOnly = CKR_SESSION_READ_ONLY,
    SessionReadOnlyExists = CKR_SESSION_READ_ONLY_EXISTS,
    SessionReadWriteSoExists = CKR_SESSION_READ_WRITE_SO_EXISTS,
    SlotIdInvalid = CKR_SLOT_ID_INVALID,
    TemplateIncomplete = CKR_TEMPLATE_INCOMPLETE,
    TemplateInconsistent = CKR_TEMPLATE_INCONSISTENT,
    TokenNotPresent = CKR_TOKEN_NOT_PRESENT,
    TokenNotRecognized = CKR_TOKEN_NOT_RECOGNIZED,
    TokenWriteProtected = CKR_TOKEN_WRITE_PROTECTED,
    UserAlreadyLoggedIn = CKR_USER_ALREADY_LOGGED_IN,
    UserAnotherAlreadyLoggedIn = CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
    UserNotLoggedIn = CKR_USER_NOT_LOGGED_IN,
    UserPinNotInitialized = CKR_USER_PIN_NOT_INITIALIZED,
    UserTypeInvalid = CKR_USER_TYPE_INVALID,
    UnwrappingKeyHandleInvalid = CKR_UNWRAPPING_KEY_HANDLE_INVALID,
    WrappedKeyInvalid = CKR_WRAPPED_KEY_INVALID,
    WrappedKeyLenRange = CKR_WRAPPED_KEY_LEN_RANGE,
    WrappingKeyHandleInvalid = CKR_WRAPPING_KEY_HANDLE_INVALID,
}

pub type Result<T> = std::result::Result<T, Rv>;

impl From<sdb::Error> for Rv {
    fn from(e: sdb::Error) -> Rv {
        match e {
            sdb::Error::NotFound(_) => Rv::ObjectHandleInvalid,
            sdb::Error::ReadOnly => Rv::TokenWriteProtected,
            sdb::Error::IdsExhausted => Rv::DeviceMemory,
            // A format that cannot hold what was asked (the legacy one).
            sdb::Error::Unsupported(_) => Rv::FunctionFailed,
            // NSS's legacy module's answer for an object it cannot store.
            sdb::Error::NotStorable(_) => Rv::AttributeValueInvalid,
            sdb::Error::NotRecognized(_) => Rv::TokenNotRecognized,
            // Still busy after every retry (about half a minute): the call
            // failed, the database is fine.
            sdb::Error::Busy => Rv::FunctionFailed,
            sdb::Error::Corrupt(_) | sdb::Error::Io { .. } | sdb::Error::Backend { .. } => {
                Rv::DeviceError
            }
        }
    }
}
